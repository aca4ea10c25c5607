//! Re-encodes an L-CAM weight file with F16 tensors (half the size; how the shipped Lite0 weights
//! were made): `cargo run --release -p deepsight-explain --example lcam_half -- IN OUT`.

use deepsight_explain::learned::LcamWeights;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = &args[..] else {
        return Err("usage: lcam_half IN.safetensors OUT.safetensors".into());
    };
    let w = LcamWeights::from_bytes(&std::fs::read(input)?, input)?;
    std::fs::write(output, w.to_bytes(true, &[], &[]))?;
    Ok(())
}
