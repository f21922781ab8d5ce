"""Probe (device run, not part of the tool): JPEG decode + resize on the GPU (nvJPEG via torchvision.io.decode_jpeg)
and EfficientNet-Lite0 fed from GPU-decoded batches, for docs/SCALE.md "Measured on a GPU". One JSON line per figure.

    python scripts/gpu_decode_probe.py FOLDER_OF_JPEGS   (the first 50; see scripts/gpu_check.sh for the device bundle)
"""
import json, os, sys, time
from pathlib import Path
import torch, torchvision
from torchvision.io import decode_jpeg
import torch.nn.functional as F

root = Path(sys.argv[1])
files = sorted(root.rglob("*.JPEG"))[:50]
datas = [torchvision.io.read_file(str(p)) for p in files]
print(json.dumps({"files": len(files), "torch": torch.__version__, "torchvision": torchvision.__version__}), flush=True)
dev = "cuda"
mean = torch.tensor([0.485, 0.456, 0.406], device=dev).view(1, 3, 1, 1) * 255
std = torch.tensor([0.229, 0.224, 0.225], device=dev).view(1, 3, 1, 1) * 255

def prep(imgs, size=224, resize=256):
    out = []
    for im in imgs:
        c, h, w = im.shape
        if c == 1:
            im = im.expand(3, h, w)
        s = resize / min(h, w)
        im = F.interpolate(im[None].float(), size=(max(resize, round(h * s)), max(resize, round(w * s))),
                           mode="bilinear", antialias=True, align_corners=False)
        H, W = im.shape[-2:]
        t, l = (H - size) // 2, (W - size) // 2
        out.append(im[..., t:t + size, l:l + size])
    x = torch.cat(out)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)

def timed(fn, n):
    fn(); torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t

for batch in (50, 250):
    reps = batch // 50
    batch_data = datas * reps
    try:
        s = timed(lambda: decode_jpeg(batch_data, device=dev), 10)
        print(json.dumps({"what": "gpu decode only", "batch": batch, "img_per_s": round(10 * batch / s, 1)}), flush=True)
        s = timed(lambda: prep(decode_jpeg(batch_data, device=dev)), 10)
        print(json.dumps({"what": "gpu decode+resize+crop+normalise", "batch": batch,
                          "img_per_s": round(10 * batch / s, 1)}), flush=True)
    except Exception as exc:
        print(json.dumps({"what": "gpu decode failed", "error": repr(exc)[:500]}), flush=True)

try:
    sys.path.insert(0, os.getcwd())
    from analysis.inference import models
    model = models.load(models.resolve("efficientnet-lite0")).module
    model = model.eval().to(dev).to(memory_format=torch.channels_last)
    batch_data = datas * 5
    def run():
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            return model(prep(decode_jpeg(batch_data, device=dev))).argmax(1)
    s = timed(run, 20)
    print(json.dumps({"what": "lite0 fed by gpu decode (end to end from JPEG bytes in memory)", "batch": 250,
                      "img_per_s": round(20 * 250 / s, 1)}), flush=True)
except Exception as exc:
    print(json.dumps({"what": "lite0 gpu-decode run failed", "error": repr(exc)[:500]}), flush=True)
