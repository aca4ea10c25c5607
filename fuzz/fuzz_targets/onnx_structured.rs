#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deepsight_fuzz::onnx_structured(data));
