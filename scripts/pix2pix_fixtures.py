#!/usr/bin/env python3
"""pix2pix generators for s2cr's import and export tests.

The networks are declared as junyanz/pytorch-CycleGAN-and-pix2pix's models/networks.py declares
them (UnetGenerator, UnetSkipConnectionBlock, NLayerDiscriminator, get_norm_layer; BSD licence),
so their state dicts have pix2pix's keys.

  make    --out DIR   writes the test fixtures (tests/fixtures/pix2pix): small generators as
                      `torch.save(net.state_dict())` files (and one as safetensors), with a fixed
                      input's output in eval mode, and bad files for the error tests.
  check   --weights G.safetensors --config JSON --expect OUT.safetensors
                      loads s2cr's export into pix2pix's UnetGenerator with
                      load_state_dict(strict=True), runs the fixed input, and compares with the
                      output s2cr computed; exits 1 when they differ by 1e-4 or more.

The fixed input is a formula both sides compute the same way: value i (row-major over
[1, channels, size, size]) is ((i * 7919) % 2001) / 1000 - 1, in float64, then rounded to
float32. Safetensors files are read and written here without the safetensors package.
"""
import argparse
import functools
import json
import struct
import sys

import torch
import torch.nn as nn


# --- models/networks.py (pix2pix), the parts a generator and discriminator need -----------------

def get_norm_layer(norm_type="instance"):
    if norm_type == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm_type == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    raise NotImplementedError(norm_type)


class UnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, num_downs, ngf=64, norm_layer=nn.BatchNorm2d, use_dropout=False):
        super().__init__()
        unet_block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, input_nc=None, submodule=None, norm_layer=norm_layer, innermost=True)
        for _ in range(num_downs - 5):
            unet_block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, input_nc=None, submodule=unet_block, norm_layer=norm_layer, use_dropout=use_dropout)
        unet_block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, input_nc=None, submodule=unet_block, norm_layer=norm_layer)
        unet_block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, input_nc=None, submodule=unet_block, norm_layer=norm_layer)
        unet_block = UnetSkipConnectionBlock(ngf, ngf * 2, input_nc=None, submodule=unet_block, norm_layer=norm_layer)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=unet_block, outermost=True, norm_layer=norm_layer)

    def forward(self, input):
        return self.model(input)


class UnetSkipConnectionBlock(nn.Module):
    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False, norm_layer=nn.BatchNorm2d, use_dropout=False):
        super().__init__()
        self.outermost = outermost
        if type(norm_layer) == functools.partial:
            use_bias = norm_layer.func == nn.InstanceNorm2d
        else:
            use_bias = norm_layer == nn.InstanceNorm2d
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        downrelu = nn.LeakyReLU(0.2, True)
        downnorm = norm_layer(inner_nc)
        uprelu = nn.ReLU(True)
        upnorm = norm_layer(outer_nc)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            down = [downconv]
            up = [uprelu, upconv, nn.Tanh()]
            model = down + [submodule] + up
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            down = [downrelu, downconv]
            up = [uprelu, upconv, upnorm]
            model = down + up
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            down = [downrelu, downconv, downnorm]
            up = [uprelu, upconv, upnorm]
            if use_dropout:
                model = down + [submodule] + up + [nn.Dropout(0.5)]
            else:
                model = down + [submodule] + up
        self.model = nn.Sequential(*model)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class NLayerDiscriminator(nn.Module):
    def __init__(self, input_nc, ndf=64, n_layers=3, norm_layer=nn.BatchNorm2d):
        super().__init__()
        if type(norm_layer) == functools.partial:
            use_bias = norm_layer.func == nn.InstanceNorm2d
        else:
            use_bias = norm_layer == nn.InstanceNorm2d
        kw, padw = 4, 1
        sequence = [nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw), nn.LeakyReLU(0.2, True)]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev, nf_mult = nf_mult, min(2 ** n, 8)
            sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=2, padding=padw, bias=use_bias), norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        nf_mult_prev, nf_mult = nf_mult, min(2 ** n_layers, 8)
        sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=1, padding=padw, bias=use_bias), norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        sequence += [nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw)]
        self.model = nn.Sequential(*sequence)

    def forward(self, input):
        return self.model(input)


# --- helpers ------------------------------------------------------------------------------------

def fixed_input(channels, size):
    n = channels * size * size
    i = torch.arange(n, dtype=torch.float64)
    x = torch.remainder(i * 7919, 2001) / 1000 - 1
    return x.to(torch.float32).reshape(1, channels, size, size)


def build(cfg):
    return UnetGenerator(cfg["input_channels"], cfg["output_channels"], cfg["depth"], cfg["ngf"], get_norm_layer(cfg["norm"]), use_dropout=cfg.get("dropout", True))


def randomize(net, seed):
    """Every parameter and running statistic away from its initial value, so a key mapped to the
    wrong place shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("weight") and p.dim() == 1:  # a norm's scale
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
            elif name.endswith("num_batches_tracked"):
                b.fill_(1234)


DTYPES = {torch.float32: "F32", torch.int64: "I64", torch.float16: "F16", torch.float64: "F64"}
TORCH = {v: k for k, v in DTYPES.items()}


def write_safetensors(path, tensors, metadata=None):
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        data = t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        dtype = TORCH[info["dtype"]]
        raw = bytearray(blob[base + a:base + b])
        out[name] = torch.frombuffer(raw, dtype=dtype).reshape(info["shape"]) if b > a else torch.zeros(info["shape"], dtype=dtype)
    return out, meta


# --- commands -----------------------------------------------------------------------------------

GOOD = [
    # name, config, input size, saved as
    ("unet128_batch_10to6", dict(input_channels=10, output_channels=6, depth=7, ngf=4, norm="batch"), 128, "pth"),
    ("unet256_instance_3to3", dict(input_channels=3, output_channels=3, depth=8, ngf=4, norm="instance"), 256, "safetensors"),
    ("unet128_instance_11to6", dict(input_channels=11, output_channels=6, depth=7, ngf=4, norm="instance"), 128, "pth"),
]


def make(out):
    import os
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    for seed, (name, cfg, size, kind) in enumerate(GOOD):
        net = build(cfg)
        randomize(net, seed + 1)
        net.eval()
        with torch.no_grad():
            y = net(fixed_input(cfg["input_channels"], size))
        sd = net.state_dict()
        if kind == "pth":
            torch.save(sd, f"{out}/{name}.pth")
        else:
            write_safetensors(f"{out}/{name}.safetensors", sd)
        params = sum(p.numel() for p in net.parameters())
        write_safetensors(f"{out}/{name}.expect.safetensors", {"output": y}, dict(config=json.dumps(cfg), size=size, params=params))
        print(f"{name}: {len(sd)} keys, {params} parameters, output {list(y.shape)}")
    # Bad files, from a tiny generator.
    tiny = dict(input_channels=3, output_channels=3, depth=5, ngf=2, norm="batch")
    net = build(tiny)
    sd = net.state_dict()
    torch.save(sd, f"{out}/bad_tiny_ok.pth")
    with open(f"{out}/bad_tiny_ok.pth", "rb") as f:
        whole = f.read()
    with open(f"{out}/bad_truncated.pth", "wb") as f:
        f.write(whole[: len(whole) // 2])
    torch.save({"epoch": 3, "note": "not a state dict"}, f"{out}/bad_not_a_state_dict.pth")
    wrong = dict(sd)
    key = "model.model.1.model.1.weight"
    wrong[key] = torch.zeros(list(sd[key].shape[:-1]) + [3])
    torch.save(wrong, f"{out}/bad_wrong_shape.pth")
    d = NLayerDiscriminator(9, ndf=2, n_layers=3, norm_layer=get_norm_layer("batch"))
    torch.save(d.state_dict(), f"{out}/bad_discriminator.pth")
    print("bad files: truncated, not a state dict, wrong shape, a discriminator")


def check(weights, config, expect):
    cfg = json.loads(config)
    net = build(cfg)
    sd, _ = read_safetensors(weights)
    net.load_state_dict(sd, strict=True)
    net.eval()
    ours, _ = read_safetensors(expect)
    with torch.no_grad():
        y = net(fixed_input(cfg["input_channels"], int(cfg["size"])))
    diff = (y - ours["output"].reshape(y.shape)).abs().max().item()
    print(json.dumps({"keys": len(sd), "max_abs_diff": diff}))
    return 0 if diff < 1e-4 else 1


def run(weights, config, inputs, out):
    """PyTorch's output (eval mode) of the network in `weights` (.pth state dict or safetensors with
    pix2pix's keys) on the tensor `input` of the safetensors file `inputs`, written to `out`."""
    cfg = json.loads(config)
    net = build(cfg)
    if weights.endswith(".pth"):
        sd = torch.load(weights, map_location="cpu", weights_only=True)
    else:
        sd, _ = read_safetensors(weights)
    net.load_state_dict(sd, strict=True)
    net.eval()
    x, _ = read_safetensors(inputs)
    with torch.no_grad():
        y = net(x["input"])
    write_safetensors(out, {"output": y.contiguous()})
    print(json.dumps({"keys": len(sd), "shape": list(y.shape)}))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--out", required=True)
    c = sub.add_parser("check")
    c.add_argument("--weights", required=True)
    c.add_argument("--config", required=True, help="JSON: input_channels, output_channels, depth, ngf, norm (batch|instance), size")
    c.add_argument("--expect", required=True)
    r = sub.add_parser("run")
    r.add_argument("--weights", required=True)
    r.add_argument("--config", required=True)
    r.add_argument("--input", required=True, help="safetensors with a tensor `input` [N, C, H, W]")
    r.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.cmd == "make":
        make(a.out)
        return 0
    if a.cmd == "run":
        return run(a.weights, a.config, a.input, a.out)
    return check(a.weights, a.config, a.expect)


if __name__ == "__main__":
    sys.exit(main())
