"""Models behind one `Backend` protocol, loaded from a spec string.

Spec grammar (the part before the first `:` picks the backend):

    tiny:PATH                      a checkpoint folder written by `emergentlab train`
    hf:ORG/NAME[@REVISION]         a hub model (safetensors only); Pythia-style `@step143000` sets the step axis
    hf:/local/dir                  a local transformers folder (also `hf:./dir`, `hf:~/dir`); safetensors only
    hf:/path/file.gguf             a GGUF file (same as `gguf:/path/file.gguf`)
    gguf:/path/file.gguf           a GGUF file, dequantized to fp32 once and cached as safetensors
    openai:MODEL@BASE_URL[#ENV]    an OpenAI-compatible server, e.g. `openai:smol@http://127.0.0.1:8000/v1#MY_KEY`;
                                   the API key is read from the environment variable ENV (default OPENAI_API_KEY)
                                   at load time and never stored; a secret in the URL is redacted
                                   (models.openai.redact_spec) wherever the spec is stored or shown

`trust_remote_code` is off unless the caller passes True (the study file's explicit flag).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from emergentlab.errors import UserError
from emergentlab.models.base import Backend, Generation, Sampler, TokenScores

if TYPE_CHECKING:
    from emergentlab.models.openai import ServerOptions

__all__ = ["Backend", "Generation", "Sampler", "TokenScores", "load_backend"]

KINDS = ("tiny", "hf", "gguf", "openai")


def load_backend(spec: str, name: str | None = None, trust_remote_code: bool = False,
                 precision: str = "fp32", server: ServerOptions | None = None, quant: str = "fp32") -> Backend:
    """A backend from a spec (grammar in the module docstring); `precision` ("fp32" or "bf16") is the dtype an hf
    model's weights run in, and only the hf backend has a choice; `server` sets an openai backend's limits; `quant`
rounds a tiny or hf model's weights to a format of `emergentlab.models.quant` (e.g. "int4-g64"; dequantized).

    Raises UserError with one line for a missing file or folder, a pickle-only checkpoint, a GGUF that fails to
    parse, a hub id that cannot be fetched (e.g. offline), a malformed spec, or a server without log-probs.
    """
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in KINDS:
        raise UserError(f"unknown backend {kind!r} in spec {spec!r} (known: {', '.join(KINDS)})", field="model")
    if precision != "fp32" and kind not in ("hf", "gguf"):
        raise UserError(f"precision {precision!r} needs an hf or gguf model, not {kind}", source=spec,
                        field="precision")
    if quant != "fp32":
        from emergentlab.models.quant import parse_quant, quantize_module

        if kind == "openai":
            raise UserError("an openai backend's weights cannot be quantized here", source=spec, field="quant")
        try:
            q = parse_quant(quant)
        except ValueError as e:
            raise UserError(str(e), source=spec, field="quant") from None
        backend = load_backend(spec, name, trust_remote_code, precision, server)
        quantize_module(backend.model, q)  # type: ignore[attr-defined]  # tiny and hf backends hold a torch module
        if (changed := getattr(backend, "weights_changed", None)) is not None:
            changed()  # the hf backend keeps an fp32 copy of a bf16 head
        return backend
    if kind == "tiny":
        from emergentlab.models.tiny import TinyBackend

        try:
            return TinyBackend.from_path(Path(rest), name)
        except (FileNotFoundError, ValueError, KeyError) as e:
            raise UserError(str(e).strip("'\""), source=f"{rest}/config.json", field="model") from None
    if kind in ("hf", "gguf"):
        from emergentlab.models.hf import HFBackend, parse_hf_spec

        if kind == "gguf" and not rest.endswith(".gguf"):
            raise UserError(f"{rest!r} does not end in .gguf", source=spec, field="model")
        return HFBackend.from_spec(parse_hf_spec(rest), name, trust_remote_code=trust_remote_code,
                                   precision=precision)
    from emergentlab.models.openai import OpenAIBackend

    return OpenAIBackend.from_spec(rest, name, server)
