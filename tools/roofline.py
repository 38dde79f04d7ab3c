"""What a training step could cost at best on this machine, for tools/benchmark.py.

The matmul bound of a step is the time of the matrix multiplies it cannot avoid (per layer:
forward, weight gradient, and input gradient except for the first layer), each timed alone at
the layer's shape and batch size, with hot caches: images/s = batch / the sum of those times.
The convolution bound is the same for a CNN: each conv's forward, weight gradient and input
gradient (not for the first conv) timed alone at its shape and batch size in the net's layout,
plus the head's matmuls (all with their input gradient).

The roofline bound of an MLP step adds the memory traffic a step cannot avoid, at the best
bandwidth measured here (see `memory_bandwidth`): the optimizer's and the max-norm check's
(see `step_traffic`). Everything else (dropout masks, ReLU, loss, jitter, shuffling, the
bias gradients) is overhead against both.
"""
import statistics
import time

import torch
import torch.nn.functional as F

FP32_BYTES = 4
# SGD with momentum (damped or Nesterov alike) reads each parameter, its gradient and its
# momentum buffer and writes the parameter and the buffer: 5 fp32 tensors' worth a step. The
# gradient's write is the weight-gradient matmul's output, already in the matmul bound
# (zero_grad(set_to_none=True) frees it: no zeroing pass).
SGD_TENSOR_PASSES = 5
# each tensor of the bandwidth measurement: past the last-level cache (32 MB on the EPYC
# measured), so that the bandwidth is memory's
BANDWIDTH_MB = 64


def median_seconds(fn, repeats=7, inner=20):
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - tick) / inner)
    return statistics.median(times)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bound(pieces, batch_size, device, timer=median_seconds):
    """Images/s if a training step were nothing but `pieces` ((flops, fn) pairs), each timed
    alone by `timer`, and their GFLOP/s."""
    seconds = sum(timer(lambda: (fn(), sync(device))) for _, fn in pieces)
    flops = sum(flops for flops, _ in pieces)
    return {"images_per_s": batch_size / seconds, "gflops": flops / seconds / 1e9}


def linear_pieces(widths, batch_size, device, first_input_grad=False):
    """The matmuls of a step through linear layers of these widths: per layer forward, weight
    gradient and input gradient (for the first layer only if `first_input_grad`)."""
    pieces = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        x, w = torch.randn(batch_size, n_in, device=device), torch.randn(n_out, n_in, device=device)
        g = torch.randn(batch_size, n_out, device=device)
        products = [lambda x=x, w=w: x @ w.t(), lambda x=x, g=g: g.t() @ x]
        if i > 0 or first_input_grad:
            products.append(lambda g=g, w=w: g @ w)
        pieces += [(2.0 * batch_size * n_in * n_out, product) for product in products]
    return pieces


def conv_pieces(c_in, c_out, size, kernel, batch_size, device, input_grad, channels_last):
    """Forward, weight gradient and (if `input_grad`) input gradient of one stride-1 'same'
    conv of a (batch, c_in, *size) input, in the layout given."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch_size, c_in, *size, device=device).to(memory_format=layout)
    w = torch.randn(c_out, c_in, kernel, kernel, device=device).to(memory_format=layout)
    g = torch.randn(batch_size, c_out, *size, device=device).to(memory_format=layout)
    pad = kernel // 2

    def backward(mask):  # what autograd calls for a conv's gradients
        return lambda: torch.ops.aten.convolution_backward(
            g, x, w, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, mask)
    products = [lambda: F.conv2d(x, w, padding=pad), backward([False, True, False])]
    if input_grad:
        products.append(backward([True, False, False]))
    flops = 2.0 * batch_size * size[0] * size[1] * c_out * c_in * kernel * kernel
    return [(flops, product) for product in products]


def matmul_bound(hidden, batch_size, device, timer=median_seconds):
    """The matmul bound of a step of the 784-`hidden`-10 MLP."""
    return bound(linear_pieces([784, *hidden, 10], batch_size, device), batch_size, device, timer)


def conv_bound(config, batch_size, device, channels_last=False, timer=median_seconds):
    """The convolution bound of a step of the CNN of `config` (a layers.CNN config): its convs
    (see `conv_pieces`), then its head's matmuls, all of them with their input gradient."""
    pieces, width, size = [], config["in_shape"][0], list(config["in_shape"][1:])
    for channels in config["channels"]:
        for _ in range(config["convs"]):
            first = not pieces  # no gradient of the images
            pieces += conv_pieces(width, channels, size, config["kernel"], batch_size, device,
                                  input_grad=not first, channels_last=channels_last)
            width = channels
        size = [side // 2 for side in size]
    head = [width * size[0] * size[1], *config["hidden"], config["classes"]]
    pieces += linear_pieces(head, batch_size, device, first_input_grad=True)
    return bound(pieces, batch_size, device, timer)


def matmul_chain(hidden, batch_size, device, timer=median_seconds):
    """Images/s of the same matrix multiplies run back to back as a step runs them, each on the
    previous one's output: what a step would cost if everything else were free."""
    widths = [784, *hidden, 10]
    weights = [torch.randn(b, a, device=device) / a ** 0.5 for a, b in zip(widths[:-1], widths[1:])]
    x, grad_out = torch.rand(batch_size, 784, device=device), torch.randn(batch_size, 10, device=device)

    def step():
        activations = [x]
        for w in weights:
            activations.append(activations[-1] @ w.t())
        g = grad_out
        for i in reversed(range(len(weights))):
            g.t() @ activations[i]
            if i > 0:
                g = g @ weights[i]
        sync(device)
    return {"images_per_s": batch_size / timer(step)}


# ---------------------------------------------------------------------------- the roofline
def memory_bandwidth(device, mb=BANDWIDTH_MB, timer=median_seconds):
    """GB/s of a copy (reads one tensor of `mb` MB, writes another) and of an in-place add (reads
    two, writes one: the pattern of the optimizer's update), at this process's thread count, as
    the epochs run; `gb_per_s` is the higher, the best this machine showed. Bytes counted are
    those the code reads and writes (as STREAM counts them), not the cache's write-allocate
    reads."""
    n = mb * 2 ** 20 // FP32_BYTES
    a, b = torch.rand(n, device=device), torch.rand(n, device=device)
    copy_s = timer(lambda: (a.copy_(b), sync(device)))
    add_s = timer(lambda: (a.add_(b), sync(device)))
    tensor_bytes = n * FP32_BYTES
    copy, add = 2 * tensor_bytes / copy_s / 1e9, 3 * tensor_bytes / add_s / 1e9
    return {"gb_per_s": max(copy, add), "copy_gb_per_s": copy, "add_gb_per_s": add,
            "tensor_mb": mb, "threads": torch.get_num_threads()}


def step_traffic(net):
    """Bytes an MLP step of `net` must move besides its matmuls: the optimizer's (see
    SGD_TENSOR_PASSES) and, with max-norm, one read of the hidden layers' weights (the check of
    their lengths, layers.over_bound; renorm_'s rewrite is skipped while no unit is at the
    bound, the usual case)."""
    parameters = sum(p.numel() for p in net.parameters())
    checked = sum(layer.weight.numel() for layer in net.layers[:-1]) if net.max_norm > 0 else 0
    return {"parameters": parameters,
            "optimizer_bytes": SGD_TENSOR_PASSES * FP32_BYTES * parameters,
            "max_norm_bytes": FP32_BYTES * checked}


def roofline_bound(matmul, traffic, gb_per_s, batch_size):
    """Images/s if a step were its matmuls (`matmul`, a bound) plus its `traffic` (see
    `step_traffic`) at `gb_per_s`: batch / (matmul seconds + bytes / bandwidth). The seconds
    are a step's; an epoch's are these times its steps, the same ratio."""
    matmul_s = batch_size / matmul["images_per_s"]
    memory_s = (traffic["optimizer_bytes"] + traffic["max_norm_bytes"]) / (gb_per_s * 1e9)
    return {"images_per_s": batch_size / (matmul_s + memory_s), "matmul_s": matmul_s,
            "memory_s": memory_s, "gb_per_s": gb_per_s, **traffic}
