//! Re-encodes an explainer weight file with F16 tensors (half the size; how the shipped Lite0
//! weights were made): `cargo run --release -p deepsight-explain --example explainer_half -- IN OUT`.

use deepsight_explain::learned::ExplainerWeights;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = &args[..] else {
        return Err("usage: explainer_half IN.safetensors OUT.safetensors".into());
    };
    let w = ExplainerWeights::from_bytes(&std::fs::read(input)?, input)?;
    std::fs::write(output, w.to_bytes(true, &[], &[]))?;
    Ok(())
}
