"""Makes the small `.pth` test files of `tests/pth_reader.rs` (run with any Python that has torch):
    python make_pth.py
- tiny_legacy.pth: a state dict in torch's legacy (non-zip) format, with a non-contiguous view,
  a float64 and a float16 tensor and an integer counter;
- tiny_zip.pth: the same in the zip format (torch >= 1.6 default);
- malicious.pth: a pickle whose REDUCE would call os.system: must be refused, never run.
"""
import os, pickle, torch

HERE = os.path.dirname(os.path.abspath(__file__))
base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
state = {
    "conv.weight": torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2) / 8,
    "fc.weight": base.t(),  # a transposed (strided) view
    "bn.running_var": torch.tensor([0.5, 1.5], dtype=torch.float64),
    "half": torch.tensor([1.0, -2.5], dtype=torch.float16),
    "bn.num_batches_tracked": torch.tensor(7),
}
torch.save(state, os.path.join(HERE, "tiny_legacy.pth"), _use_new_zipfile_serialization=False)
torch.save(state, os.path.join(HERE, "tiny_zip.pth"))


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/deepsight-pwned",))


with open(os.path.join(HERE, "malicious.pth"), "wb") as f:
    pickle.dump({"w": Evil()}, f, protocol=2)
