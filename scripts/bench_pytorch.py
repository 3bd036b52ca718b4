#!/usr/bin/env python3
"""The same work as `s2cr bench --what model`, in PyTorch: pix2pix's UnetGenerator and
NLayerDiscriminator (junyanz/pytorch-CycleGAN-and-pix2pix, models/networks.py, re-declared
here layer for layer) with 10 input and 6 output channels, timing the generator's inference at
batch 1 and a full GAN training step as pix2pix's loop runs it (D on real vs detached fake, then
G on adversarial + 100 L1 with D frozen by set_requires_grad(netD, False), Adam) on the CPU (or
a CUDA GPU with --device cuda, as scripts/gpu-bench.sh runs it), to print beside the Burn
figures of the same machine. `s2cr bench --what model --compare-pytorch`
runs it in the same invocation, interleaved with Burn's runs (--json, one line per model).

PyTorch is optional. Install it with:
    pip install torch --index-url https://download.pytorch.org/whl/cpu
Run:
    python3 scripts/bench_pytorch.py --size 256
"""
import argparse
import json
import math
import os
import resource
import sys
import time

try:
    import torch
    import torch.nn as nn
except ImportError:
    sys.exit("PyTorch is not installed: pip install torch --index-url https://download.pytorch.org/whl/cpu")


class UnetBlock(nn.Module):
    """pix2pix's UnetSkipConnectionBlock."""

    def __init__(self, outer_nc, inner_nc, input_nc=None, sub=None, outermost=False, innermost=False, dropout=False):
        super().__init__()
        self.outermost = outermost
        input_nc = input_nc or outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, 2, 1, bias=False)
        downrelu, downnorm = nn.LeakyReLU(0.2, True), nn.BatchNorm2d(inner_nc)
        uprelu, upnorm = nn.ReLU(True), nn.BatchNorm2d(outer_nc)
        if outermost:
            up = [uprelu, nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1), nn.Tanh()]
            model = [downconv, sub] + up
        elif innermost:
            model = [downrelu, downconv, uprelu, nn.ConvTranspose2d(inner_nc, outer_nc, 4, 2, 1, bias=False), upnorm]
        else:
            up = [uprelu, nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1, bias=False), upnorm]
            model = [downrelu, downconv, downnorm, sub] + up + ([nn.Dropout(0.5)] if dropout else [])
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


def unet(input_nc, output_nc, num_downs, ngf):
    block = UnetBlock(ngf * 8, ngf * 8, innermost=True)
    for _ in range(num_downs - 5):
        block = UnetBlock(ngf * 8, ngf * 8, sub=block, dropout=True)
    block = UnetBlock(ngf * 4, ngf * 8, sub=block)
    block = UnetBlock(ngf * 2, ngf * 4, sub=block)
    block = UnetBlock(ngf, ngf * 2, sub=block)
    return UnetBlock(output_nc, ngf, input_nc=input_nc, sub=block, outermost=True)


def patch_gan(input_nc, ndf, n_layers=3):
    seq = [nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    mult = 1
    for n in range(1, n_layers):
        prev, mult = mult, min(2 ** n, 8)
        seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
    prev, mult = mult, min(2 ** n_layers, 8)
    seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=False), nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
    seq += [nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
    return nn.Sequential(*seq)


JSON = False
DEVICE = "cpu"


def sync():
    """Waits for the GPU's queued work, so times cover it (as the Burn side reads results back)."""
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def bench(name, ngf, ndf, depth, size, repeats):
    g, d = unet(10, 6, depth, ngf).to(DEVICE), patch_gan(16, ndf).to(DEVICE)
    params = sum(p.numel() for p in g.parameters()) / 1e6
    x, y = torch.randn(1, 10, size, size, device=DEVICE), torch.randn(1, 6, size, size, device=DEVICE)
    g.eval()
    with torch.no_grad():
        g(x)
        sync()
        start = time.perf_counter()
        for _ in range(repeats):
            g(x)
            sync()
        infer_ms = 1000 * (time.perf_counter() - start) / repeats
    g.train()
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def set_requires_grad(net, flag):
        for p in net.parameters():
            p.requires_grad = flag

    def step():
        fake = g(x)
        set_requires_grad(d, True)
        opt_d.zero_grad()
        d_loss = 0.5 * ((d(torch.cat([x, y], 1)) - 1).pow(2).mean() + d(torch.cat([x, fake.detach()], 1)).pow(2).mean())
        d_loss.backward()
        opt_d.step()
        set_requires_grad(d, False)
        opt_g.zero_grad()
        g_loss = (d(torch.cat([x, fake], 1)) - 1).pow(2).mean() + 100 * (fake - y).abs().mean()
        g_loss.backward()
        opt_g.step()
        sync()

    step()
    steps = max(1, min(repeats, 3))
    start = time.perf_counter()
    for _ in range(steps):
        step()
    train_s = (time.perf_counter() - start) / steps
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if JSON:
        print(json.dumps({"model": name, "params_m": params, "torch": torch.__version__, "threads": torch.get_num_threads(), "device": DEVICE, "infer_ms": infer_ms, "train_step_s": train_s, "peak_rss_mib": rss}), flush=True)
    else:
        print(f"  {name:<36} {params:>7.1f}M {where():<48} {infer_ms:>12.1f} {train_s:>14.3f} {rss:>7.0f} MiB")


def where():
    if DEVICE.startswith("cuda"):
        return f"GPU (PyTorch {torch.__version__}, {torch.cuda.get_device_name(DEVICE)})"
    return f"CPU (PyTorch {torch.__version__})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256, help="patch side (256 for unet_256)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads (default: all)")
    ap.add_argument("--models", default="unet_256,small", help="comma-separated: unet_256, small")
    ap.add_argument("--json", action="store_true", help="one JSON line per model, nothing else")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = ap.parse_args()
    global JSON, DEVICE
    JSON, DEVICE = args.json, args.device
    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {DEVICE}: this PyTorch ({torch.__version__}) sees no CUDA GPU")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    levels = int(math.log2(args.size))
    models = args.models.split(",")
    if JSON:
        if "unet_256" in models:
            bench("unet_256", 64, 64, min(levels, 8), args.size, args.repeats)
        if "small" in models:
            bench("small", 16, 16, min(levels, 6), args.size, args.repeats)
        return
    print(f"conditional GAN in PyTorch, 10 input and 6 output channels, {args.size} x {args.size} patches, batch 1, {torch.get_num_threads()} CPU threads, on {where()}")
    print(f"  {'model':<36} {'params':>8} {'device':<48} {'ms/patch':>12} {'s/train step':>14} {'peak RSS':>10}")
    bench(f"pix2pix unet_256 (ngf 64, depth {min(levels, 8)})", 64, 64, min(levels, 8), args.size, args.repeats)
    bench(f"small (ngf 16, ndf 16, depth {min(levels, 6)})", 16, 16, min(levels, 6), args.size, args.repeats)


if __name__ == "__main__":
    main()
