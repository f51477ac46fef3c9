"""The ctypes declarations must match include/rnncore.h exactly: every function of the
header is bound with its argtypes and restype (and no binding names a function the header
lacks), every struct has the same fields and types, every enum the same constants."""

from __future__ import annotations

import ctypes
import re
from ctypes import (
    POINTER,
    c_char_p,
    c_float,
    c_int32,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)

import pytest

import rnncore
from rnncore import _lib

from conftest import REPO_ROOT

HEADER = REPO_ROOT / "include" / "rnncore.h"

_SCALARS = {
    "float": c_float,
    "size_t": c_size_t,
    "uint32_t": c_uint32,
    "uint64_t": c_uint64,
    "int32_t": c_int32,
    "uint8_t": c_uint8,
}


class Header:
    """The declarations of a C header, parsed well enough for cbindgen's output."""

    def __init__(self, text: str):
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        text = re.sub(r"//[^\n]*", " ", text)
        #: `#define NAME number` (the header's constants, used as array lengths).
        self.defines: dict[str, int] = {
            m.group(1): int(m.group(2), 0)
            for m in re.finditer(r"^[ \t]*#define\s+(\w+)\s+(\d+|0x[0-9a-fA-F]+)\s*$", text, re.M)
        }
        text = re.sub(r"^[ \t]*#.*$", " ", text, flags=re.M)
        self.enums: dict[str, dict[str, int]] = {}
        self.structs: dict[str, list[tuple[str, str]]] = {}
        self.aliases: dict[str, str] = {}  # typedef name -> underlying type
        self.opaque: set[str] = set()
        self.functions: dict[str, tuple[str, list[str]]] = {}
        self.callbacks: dict[str, tuple[str, list[str]]] = {}  # function-pointer typedefs

        def enum_block(m: re.Match) -> str:
            name = m.group(4) or m.group(2)
            values, nxt = {}, 0
            for item in filter(None, (s.strip() for s in m.group(3).split(","))):
                key, _, val = (p.strip() for p in item.partition("="))
                nxt = int(val, 0) if val else nxt
                values[key] = nxt
                nxt += 1
            self.enums[name] = values
            return " "

        def struct_block(m: re.Match) -> str:
            name = m.group(4) or m.group(2)
            fields = []
            for decl in filter(None, (s.strip() for s in m.group(3).split(";"))):
                arr = re.fullmatch(r"(.*?)(\w+)\s*\[\s*(\w+)\s*\]", decl)
                if arr:  # `type name[LEN]`: kept as "type[LEN]"
                    fields.append((arr.group(2), f"{arr.group(1).strip()}[{arr.group(3)}]"))
                    continue
                ty, names = re.match(r"(.*?)(\w+(?:\s*,\s*\w+)*)$", decl).groups()
                for n in names.split(","):
                    fields.append((n.strip(), ty.strip()))
            self.structs[name] = fields
            return " "

        block = r"(typedef\s+)?{}\s+(\w+)?\s*\{{([^}}]*)\}}\s*(\w+)?\s*;"
        text = re.sub(block.format("enum"), enum_block, text)
        text = re.sub(block.format("struct"), struct_block, text)
        text = text.replace('extern "C" {', " ").replace("{", " ").replace("}", " ")
        for stmt in (" ".join(s.split()) for s in text.split(";")):
            if not stmt:
                continue
            m = re.fullmatch(r"typedef (?:struct|enum) (\w+) (\w+)", stmt)
            if m:
                if m.group(1) not in self.structs and m.group(1) not in self.enums:
                    self.opaque.add(m.group(2))
                continue
            m = re.fullmatch(r"typedef (.*?) ?\( ?\* ?(\w+) ?\) ?\((.*)\)", stmt)
            if m:
                ret, name, params = m.groups()
                self.callbacks[name] = (ret.strip(), self._params(params))
                continue
            m = re.fullmatch(r"typedef (\w+) (\w+)", stmt)
            if m:
                self.aliases[m.group(2)] = m.group(1)
                continue
            m = re.fullmatch(r"(?:extern )?(.*?)\b(\w+) ?\((.*)\)", stmt)
            if m:
                ret, name, params = m.groups()
                self.functions[name] = (ret.strip(), self._params(params))
                continue
            raise AssertionError(f"rnncore.h: cannot parse {stmt!r}")

    @staticmethod
    def _params(text: str) -> list[str]:
        params = [p.strip() for p in text.split(",")]
        return [] if params in ([""], ["void"]) else params

    def ctype(self, decl: str, param: bool = True):
        """The ctypes type for a C type (with a parameter name when `param`); a struct
        field's "type[LEN]" is an array of LEN (a number or a #define)."""
        arr = re.fullmatch(r"(.*)\[(\w+)\]", decl.strip())
        if arr:
            n = arr.group(2)
            length = int(n, 0) if n[0].isdigit() else self.defines[n]
            return self.ctype(arr.group(1), param=False) * length
        decl = decl.replace("*", " * ")
        words = [w for w in decl.split() if w not in ("const", "struct", "enum")]
        if param and len(words) > 1 and words[-1] != "*":
            words = words[:-1]  # drop the parameter name
        depth = words.count("*")
        base = " ".join(w for w in words if w != "*")
        if base == "char" and depth == 1:
            return c_char_p
        if base == "void" and depth == 0:
            return None
        if base == "void" and depth == 1:
            return c_void_p
        if base in _SCALARS:
            t = _SCALARS[base]
        elif base in self.enums or (base in self.aliases and self.aliases[base] in ("uint32_t",)):
            t = c_uint32  # the ABI's enums are 32-bit; see _lib.c_status
        elif base in self.aliases and self.aliases[base] in _SCALARS:
            t = _SCALARS[self.aliases[base]]
        elif base in _lib.STRUCTS:
            t = _lib.STRUCTS[base]
        elif base in _lib.CALLBACKS:
            t = _lib.CALLBACKS[base]
        elif base in _lib.OPAQUE:
            t = _lib.OPAQUE[base]
        else:
            raise AssertionError(f"rnncore.h: no ctypes mapping for type {base!r} (in {decl!r})")
        for _ in range(depth):
            t = POINTER(t)
        return t


@pytest.fixture(scope="module")
def header() -> Header:
    if not HEADER.exists():
        pytest.fail(f"{HEADER} is missing")
    return Header(HEADER.read_text())


def _name(t) -> str:
    return "void" if t is None else getattr(t, "__name__", repr(t))


def test_header_parsed(header: Header):
    # Sanity: the parser saw the contract's core.
    for fn in ("rnn_version", "rnn_model_new", "rnn_model_forward", "rnn_trainer_step_xent"):
        assert fn in header.functions
    assert {"rnn_config", "rnn_train_config"} <= set(header.structs)
    assert {"rnn_model", "rnn_state", "rnn_trainer"} <= header.opaque | set(header.aliases)


def test_every_header_function_is_bound(header: Header):
    missing = sorted(set(header.functions) - set(_lib.FUNCTIONS))
    assert not missing, f"functions in rnncore.h without a ctypes binding: {missing}"


def test_every_binding_is_in_header(header: Header):
    extra = sorted(set(_lib.FUNCTIONS) - set(header.functions))
    assert not extra, f"ctypes bindings for functions rnncore.h does not declare: {extra}"


def signature_problems(header: Header) -> list[str]:
    problems = []
    for name, (ret, params) in sorted(header.functions.items()):
        if name not in _lib.FUNCTIONS:
            problems.append(f"{name}: in rnncore.h, not bound")
            continue
        want_res = header.ctype(ret, param=False)
        want_args = [header.ctype(p) for p in params]
        got_res, got_args = _lib.FUNCTIONS[name]
        if got_res is not want_res:
            problems.append(f"{name}: restype {_name(got_res)}, header says {ret!r}")
        if len(got_args) != len(want_args):
            problems.append(
                f"{name}: {len(got_args)} argtypes, header has {len(want_args)} parameters"
            )
            continue
        for i, (g, w) in enumerate(zip(got_args, want_args)):
            if g is not w:
                problems.append(f"{name}: argument {i} is {_name(g)}, header says {params[i]!r}")
    for name in sorted(set(_lib.FUNCTIONS) - set(header.functions)):
        problems.append(f"{name}: bound, not in rnncore.h")
    return problems


def test_signatures_match_header(header: Header):
    problems = signature_problems(header)
    assert not problems, "\n".join(problems)


def test_loaded_functions_have_argtypes_and_restype(header: Header):
    for name in header.functions:
        fn = getattr(_lib.lib, name)
        restype, argtypes = _lib.FUNCTIONS[name]
        assert fn.argtypes is not None and list(fn.argtypes) == list(argtypes), name
        assert fn.restype is restype, name  # void must be None, not ctypes' default c_int


def test_structs_match_header(header: Header):
    for cname, pytype in _lib.STRUCTS.items():
        assert cname in header.structs, f"rnncore.h has no struct {cname}"
        want = [(n, header.ctype(t, param=False)) for n, t in header.structs[cname]]
        got = [(n, t) for n, t in pytype._fields_]
        assert got == want, f"{cname}: ctypes fields {got} != header {want}"
        # every struct of the header that a function takes is declared here
    for cname in header.structs:
        assert cname in _lib.STRUCTS, f"struct {cname} of rnncore.h has no ctypes declaration"


def test_struct_sizes_and_defines_match_header(header: Header):
    for name, value in _lib.DEFINES.items():
        assert header.defines.get(name) == value, f"{name}: header {header.defines.get(name)}"
    assert ctypes.sizeof(_lib.RnnModelDesc) == header.defines["RNN_MODEL_DESC_SIZE_V1"]
    assert _lib.RnnModelDesc().struct_size == ctypes.sizeof(_lib.RnnModelDesc)


def test_struct_check_catches_a_changed_field(header: Header):
    # The struct check can fail: a header whose rnn_model_desc differs is reported.
    text = HEADER.read_text()
    for pattern, repl in [
        (r"rnn_dense post\[RNN_MAX_DENSE\]", "rnn_dense post[8]"),
        (r"float dropout;", "uint32_t dropout;"),
    ]:
        edited, n = re.subn(pattern, repl, text, count=1)
        assert n == 1, pattern
        h = Header(edited)
        want = [(f, h.ctype(t, param=False)) for f, t in h.structs["rnn_model_desc"]]
        assert list(_lib.RnnModelDesc._fields_) != want, pattern


def test_callbacks_match_header(header: Header):
    assert set(header.callbacks) == set(_lib.CALLBACKS), (
        f"function-pointer types: rnncore.h {sorted(header.callbacks)}, "
        f"ctypes {sorted(_lib.CALLBACKS)}"
    )
    for cname, (ret, params) in header.callbacks.items():
        got = _lib.CALLBACKS[cname]
        assert got._restype_ is header.ctype(ret, param=False), cname
        assert list(got._argtypes_) == [header.ctype(p) for p in params], cname


def test_enums_match_header(header: Header):
    for cname, (pyenum, prefix) in rnncore.C_ENUMS.items():
        assert cname in header.enums, f"rnncore.h has no enum {cname}"
        want = {k[len(prefix):]: v for k, v in header.enums[cname].items()}
        got = {m.name: int(m) for m in pyenum}
        assert got == want, f"{cname}: Python {got} != header {want}"
    for cname in header.enums:
        assert cname in rnncore.C_ENUMS, f"enum {cname} of rnncore.h has no Python enum"


def test_opaque_handles_match(header: Header):
    handles = {n for n in header.opaque}
    assert handles == set(_lib.OPAQUE), f"header handles {handles} vs ctypes {set(_lib.OPAQUE)}"


def test_abi_version_matches_header():
    m = re.search(r"#define\s+RNN_ABI_VERSION\s+(\d+)", HEADER.read_text())
    assert m, "rnncore.h does not define RNN_ABI_VERSION"
    assert int(m.group(1)) == _lib.ABI_VERSION == rnncore.abi_version()


def test_check_catches_mismatches():
    # The check itself can fail: edited copies of the header are reported.
    text = HEADER.read_text()
    edits = {
        "extra parameter": (r"\brnn_model_output_size\(", "rnn_model_output_size(size_t extra, ",
                            "rnn_model_output_size: 1 argtypes, header has 2"),
        "changed type": (r"\brnn_state_reset_stream\((.*?)size_t stream",
                         r"rnn_state_reset_stream(\1uint32_t stream",
                         "rnn_state_reset_stream: argument 1"),
        "new function": (r"(#ifdef __cplusplus\s*\}|$)", "size_t rnn_brand_new(void);\n\\1",
                         "rnn_brand_new: in rnncore.h, not bound"),
        "removed function": (r"size_t\s+rnn_state_len\([^)]*\);", "",
                             "rnn_state_len: bound, not in rnncore.h"),
    }
    for what, (pattern, repl, expected) in edits.items():
        edited, n = re.subn(pattern, repl, text, count=1, flags=re.S)
        assert n == 1, f"{what}: pattern not found in rnncore.h"
        problems = signature_problems(Header(edited))
        assert any(expected in p for p in problems), f"{what}: not reported: {problems}"
