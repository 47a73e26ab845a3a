#!/usr/bin/env python3
"""Orders the native ferry's methods so that what each role runs lies together (src/Ferry.Host/method-order.txt).

The kernel maps the 64 KB around every page a process touches in a file it maps (fault-around), and VmRSS counts those
pages in every process. With the default layout a role's methods are spread over the whole 16.5 MB of code, so each of
the nine processes of `ferry distributed` had 10.7-14.5 MB of code resident (4.5-5.6 MB laid out by role). Listing every
method each role ran (under the JIT every method run is compiled at least once: tools/method-order/README.md) and
placing them first, grouped by the roles that run them, keeps each role's code in fewer windows.

usage: method-order.py JIT_LIST_DIR FERRY_DBG ILC_RSP [PAGES_DIR] > src/Ferry.Host/method-order.txt
  JIT_LIST_DIR  the DOTNET_JitStdOutFile files of FERRY_JIT_METHOD_LIST_DIR (<role><n>.<id>.txt)
  FERRY_DBG     the native ferry's symbols (publish/ferry.dbg): the names the order file must use
  ILC_RSP       obj/.../native/ferry.ilc.rsp: the assemblies, whose names prefix every symbol
  PAGES_DIR     the bench's FERRY_BENCH_MEMORY_DIR of a native run started with the binary out of the page cache and
                no read-ahead: the pages each role touched (for the methods the JIT's list lacks)
"""
import collections
import os
import re
import subprocess
import sys

ROLES = ["api", "conductor", "scheduler", "compute"]


def strip_nested(text, open_char, close_char):
    """The text without its (balanced, nested) open_char ... close_char parts."""
    out, depth = [], 0
    for ch in text:
        if ch == open_char:
            depth += 1
        elif ch == close_char and depth:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def normalize(name):
    return re.sub(r"[^A-Za-z0-9]", "_", name)


# How the JIT names primitive generic arguments, and how the native symbols name them.
PRIMITIVES = {"bool": "Bool", "char": "Char", "byte": "UInt8", "ubyte": "UInt8", "sbyte": "Int8", "short": "Int16",
              "ushort": "UInt16", "int": "Int32", "uint": "UInt32", "long": "Int64", "ulong": "UInt64", "float": "Single",
              "double": "Double", "nint": "IntPtr", "nuint": "UIntPtr"}


def generic_tokens(text, open_char, close_char):
    """The words of the generic arguments in a name (inside open_char ... close_char), primitives named as in symbols."""
    words, depth, current = set(), 0, []
    for ch in text:
        if ch == open_char:
            depth += 1
        elif ch == close_char:
            depth -= 1
        elif depth > 0:
            current.append(ch)
            continue
        if current:
            words.update(re.split(r"[^A-Za-z0-9]+", "".join(current)))
            current = []
    words.discard("")
    return frozenset(PRIMITIVES.get(word, word) for word in words)


def jit_method(line):
    """'JIT compiled Ns.Type`1[Canon]+Nested:Method[T](args):ret [Tier0, ...]' -> ('Ns_Type_1_Nested__Method', {Canon…})."""
    text = line.split("JIT compiled ", 1)[1].rsplit(" [", 1)[0]
    depth, cut = 0, len(text)
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "(" and depth == 0:
            cut = i
            break
    type_name, _, method = strip_nested(text[:cut], "[", "]").rpartition(":")
    return normalize(type_name) + "__" + normalize(method), generic_tokens(text[:cut], "[", "]")


def role_of(file_name):
    base = file_name.split(".")[0]
    return next((role for role in ROLES if base.startswith(role)), None)


def main(list_dir, dbg, rsp, pages_dir=None):
    # Methods per role, each in the order the first process of that role compiled it.
    first_seen = {}
    roles_of = collections.defaultdict(set)
    instantiations = collections.defaultdict(set)
    for file_name in sorted(os.listdir(list_dir)):
        role = role_of(file_name)
        if role is None:
            continue
        with open(os.path.join(list_dir, file_name), errors="replace") as lines:
            for line in lines:
                if "JIT compiled " not in line:
                    continue
                key, arguments = jit_method(line)
                roles_of[key].add(role)
                instantiations[key].add(arguments)
                first_seen.setdefault(key, len(first_seen))

    assemblies = ["ferry"]
    for line in open(rsp):
        if line.startswith("-r:"):
            assemblies.append(os.path.basename(line.strip()[3:])[:-4])
    prefixes = sorted({normalize(a) for a in assemblies} | {"S_P_" + a[len("System.Private."):].replace(".", "_")
                                                           for a in assemblies if a.startswith("System.Private.")},
                      key=len, reverse=True)

    # The managed code's symbols, keyed as the JIT names them: no assembly prefix, no generic arguments, no overload suffix.
    symbols = collections.defaultdict(list)
    code = code_symbols(dbg)
    for _, name in code:
        bare = name[len("unbox_"):] if name.startswith("unbox_") else name
        bare = strip_nested(bare, "<", ">")
        prefix = next((p for p in prefixes if bare.startswith(p + "_")), None)
        if prefix is None:
            continue
        key = bare[len(prefix) + 1:]
        symbol = (name, generic_tokens(name, "<", ">"))
        symbols[key].append(symbol)
        overload = re.sub(r"_\d+$", "", key)
        if overload != key:
            symbols[overload].append(symbol)
    # An instantiation is the JIT's when the words of its arguments are the JIT's plus assembly names (symbols name each
    # type with its assembly: Ferry_Core_Ferry_Core_Domain_TaskState).
    assembly_words = {word for p in prefixes for word in p.split("_")}

    def same_instantiation(symbol_words, jit_words):
        return jit_words <= symbol_words and symbol_words - jit_words <= assembly_words

    # Each symbol's roles: the JIT's list where it names the method (exact), else the pages the native processes had
    # resident (PAGES_DIR: the code the JIT never compiles, the runtime's own and the native-only paths).
    roles_by_symbol, rank = {}, {}
    found = 0
    for key in first_seen:
        names = [name for name, words in symbols.get(key, [])
                 if any(same_instantiation(words, jit_words) for jit_words in instantiations[key])]
        found += bool(names)
        for name in names:
            roles_by_symbol.setdefault(name, set()).update(roles_of[key])
            rank.setdefault(name, first_seen[key])
    jit_symbols = len(roles_by_symbol)
    if pages_dir:
        for name, roles in native_roles(dbg, code, pages_dir).items():
            if name not in roles_by_symbol:
                roles_by_symbol[name] = roles
                rank[name] = len(first_seen) + len(rank)

    # Grouped by the set of roles that ran them: the methods of all four first, then three, two, one; within a group the
    # JIT's in the order they were first compiled (start-up first), then the native pages' in address order.
    def group(name):
        roles = roles_by_symbol[name]
        return (-len(roles), [role not in roles for role in ROLES], rank[name])

    for name in sorted(roles_by_symbol, key=group):
        print(name)
    print(f"method-order: {len(first_seen)} methods run under the JIT, {found} found in the binary ({jit_symbols} symbols); "
          f"{len(roles_by_symbol) - jit_symbols} more from resident pages; {len(roles_by_symbol)} symbols ordered", file=sys.stderr)


def code_symbols(dbg):
    """(address, name) of every code symbol of the binary, by address."""
    nm = subprocess.run(["nm", "--defined-only", "-n", dbg], check=True, capture_output=True, text=True).stdout
    return [(int(parts[0], 16), parts[2]) for parts in (line.split(" ", 2) for line in nm.splitlines())
            if len(parts) == 3 and parts[0] and parts[1] in "tT"]


def native_roles(dbg, code, pages_dir):
    """The roles whose processes had a page of each managed method resident (<when>.<role>.<pid>.executable-pages files)."""
    binary = dbg[:-len(".dbg")]
    segments = []  # (file offset, virtual address, size) of each LOAD segment
    for line in subprocess.run(["readelf", "-lW", binary], check=True, capture_output=True, text=True).stdout.splitlines():
        fields = line.split()
        if fields and fields[0] == "LOAD":
            segments.append((int(fields[1], 16), int(fields[2], 16), int(fields[4], 16)))
    resident = collections.defaultdict(set)  # virtual page -> roles
    for file_name in os.listdir(pages_dir):
        parts = file_name.split(".")
        if not file_name.endswith(".executable-pages") or role_of(parts[1]) is None:
            continue
        for offset in open(os.path.join(pages_dir, file_name)).read().split():
            offset = int(offset, 16)
            for file_offset, address, size in segments:
                if file_offset <= offset < file_offset + size:
                    resident[(address + offset - file_offset) // 4096].add(role_of(parts[1]))
    roles = {}
    for (start, name), (end, _) in zip(code, code[1:]):
        touched = set().union(*(resident.get(page, set()) for page in range(start // 4096, (max(end, start + 1) - 1) // 4096 + 1)))
        if touched and not name.startswith("__"):
            roles[name] = touched
    return roles


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    main(*sys.argv[1:])
