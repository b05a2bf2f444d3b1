#!/usr/bin/env bash
# Rebuilds the committed WebAssembly conv kernels from src/engine/native/conv3x3.c:
#   conv3x3-simd128.wasm  plain SIMD128 (always usable)
#   conv3x3-relaxed.wasm  with f32x4.relaxed_madd (Node 20 needs --experimental-wasm-relaxed-simd)
# Deterministic: same clang -> same bytes (test/engine/conv3x3.test.ts checks the committed ones).
# Usage: scripts/build-wasm-kernels.sh [outdir]   (default: src/engine/native)
set -euo pipefail
cd "$(dirname "$0")/.."
src=src/engine/native/conv3x3.c
out=${1:-src/engine/native}
CLANG=${CLANG:-clang-14}
WASM_LD=${WASM_LD:-/usr/lib/llvm-14/bin/wasm-ld}
OBJDUMP=${OBJDUMP:-llvm-objdump-14}
mkdir -p "$out"

# --import-memory: the module works on tfjs's own memory. No static data and no stack use
# (checked below), so nothing of ours lives in that memory. No name/producers sections.
flags=(--target=wasm32 -O3 -msimd128 -nostdlib -ffreestanding -fno-builtin
  -fuse-ld="$WASM_LD" -Wl,--no-entry -Wl,--import-memory -Wl,--strip-all -Wl,-z,stack-size=0)

"$CLANG" "${flags[@]}" "$src" -o "$out/conv3x3-simd128.wasm"
"$CLANG" "${flags[@]}" -mrelaxed-simd -DEMO_RELAXED "$src" -o "$out/conv3x3-relaxed.wasm"

for f in "$out/conv3x3-simd128.wasm" "$out/conv3x3-relaxed.wasm"; do
  dis=$("$OBJDUMP" -d "$f")
  # global.get/set would be the shadow stack pointer, whose initial value points into memory
  # that tfjs owns: the kernels must keep every local in wasm locals.
  if grep -Eq 'global\.(get|set)' <<<"$dis"; then echo "$f uses the shadow stack" >&2; exit 1; fi
  if "$OBJDUMP" -h "$f" | grep -Eq ' DATA '; then echo "$f has a data section" >&2; exit 1; fi
done

# clang-14 encodes the relaxed fused multiply-add as the prototype opcode 0xaf; V8 >= 10.x
# implements the final f32x4.relaxed_madd = 0x105 (LEB 0x85 0x02). Patch exactly the
# instructions the disassembler reports, and refuse if any other byte pattern is involved.
count=$(grep -c 'f32x4.fma' <<<"$("$OBJDUMP" -d "$out/conv3x3-relaxed.wasm")" || true)
node - "$out/conv3x3-relaxed.wasm" "$count" <<'JS'
const fs = require('node:fs');
const [file, expected] = process.argv.slice(2);
const bytes = fs.readFileSync(file);
// Walk the sections to the code section, then count fd af 01 inside it.
let at = 8, code;
const leb = () => { let r = 0, s = 0, b; do { b = bytes[at++]; r |= (b & 0x7f) << s; s += 7; } while (b & 0x80); return r >>> 0; };
while (at < bytes.length) { const id = bytes[at++]; const size = leb(); if (id === 10) code = [at, at + size]; at += size; }
let patched = 0;
for (let i = code[0]; i + 2 < code[1]; i++) {
  if (bytes[i] === 0xfd && bytes[i + 1] === 0xaf && bytes[i + 2] === 0x01) { bytes[i + 1] = 0x85; bytes[i + 2] = 0x02; patched++; }
}
if (patched !== Number(expected) || patched === 0) { console.error(`relaxed patch: ${patched} byte patterns vs ${expected} f32x4.fma instructions`); process.exit(1); }
fs.writeFileSync(file, bytes);
JS
chmod 644 "$out"/conv3x3-*.wasm
ls -l "$out"/conv3x3-*.wasm
