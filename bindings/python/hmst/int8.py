"""int8 (Q8_0) checkpoint tensors as numpy arrays: the row-quad layout of files saved with
dtype "int8-rows4" back in row-major order, and dequantization (values times block scales).

    from safetensors.numpy import load_file
    t = load_file("ckpt/model.safetensors")
    v, s = t["model.layers.0.self_attn.q_proj.weight"], t["model.layers.0.self_attn.q_proj.weight_scale"]
    if config["quantization"].get("layout") == "rows4" and is_rows4(name, v.shape):
        v, s = unpack_rows4(v, s)
    w = dequantize(v, s)          # float32 [rows, cols]
"""
import numpy as np

BLOCK = 32


def is_rows4(name, shape):
    """Whether a tensor of a "rows4" checkpoint is stored in the row-quad order: every int8
    matrix but the embedding with at least 4 rows and a width that is a multiple of 64."""
    return name != "model.embed_tokens.weight" and len(shape) == 2 and shape[0] >= 4 and shape[1] % 64 == 0


def unpack_rows4(values, scales):
    """Row-major copies of a row-quad matrix's int8 values [rows, cols] and f32 scales
    [rows, cols / 32]. Rows go in groups of four: per group, each 64-column chunk of rows 0-3 in
    turn, and the scales per run of up to 16 blocks likewise; the last rows % 4 rows are
    row-major already."""
    values, scales = np.asarray(values), np.asarray(scales)
    if values.ndim != 2 or values.dtype != np.int8:
        raise ValueError(f"values must be an int8 matrix, got {values.dtype} {values.shape}")
    rows, cols = values.shape
    nb = cols // BLOCK
    if rows < 4 or cols % 64 != 0 or scales.shape != (rows, nb):
        raise ValueError(f"not a row-quad matrix: values {values.shape}, scales {scales.shape}")
    g = rows // 4
    out_v, out_s = values.copy(), np.array(scales, dtype=np.float32)
    out_v[:4 * g] = values.reshape(-1)[:4 * g * cols].reshape(g, cols // 64, 4, 64).transpose(0, 2, 1, 3).reshape(4 * g, cols)
    s = np.asarray(scales, dtype=np.float32).reshape(-1)[:4 * g * nb].reshape(g, 4 * nb)
    full, tail = nb // 16, nb % 16
    parts = [s[:, :64 * full].reshape(g, full, 4, 16).transpose(0, 2, 1, 3).reshape(g, 4, 16 * full)]
    if tail:
        parts.append(s[:, 64 * full:].reshape(g, 4, tail))
    out_s[:4 * g] = np.concatenate(parts, axis=2).reshape(4 * g, nb)
    return out_v, out_s


def dequantize(values, scales):
    """float32 [rows, cols] = each block of 32 values times its scale (row-major tensors)."""
    values, scales = np.asarray(values), np.asarray(scales, dtype=np.float32)
    rows, cols = values.shape
    if cols % BLOCK != 0 or scales.shape != (rows, cols // BLOCK):
        raise ValueError(f"values {values.shape} and scales {scales.shape} are not Q8_0 blocks of 32")
    return (values.astype(np.float32).reshape(rows, cols // BLOCK, BLOCK) * scales[:, :, None]).reshape(rows, cols)
