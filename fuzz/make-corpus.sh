#!/usr/bin/env bash
# Builds the seed corpora reproducibly from asm/ (and the error cases):
#   corpus/assemble/  the text of every program
#   corpus/load/      the bytecode of every program
# and regenerates asm.dict from the ISA definition.
set -euo pipefail
cd "$(dirname "$0")"
root=..
cargo build --release --manifest-path "$root/Cargo.toml" >/dev/null
rcvm="$root/target/release/rcvm"
# Seeds are (re)written under fixed names; whatever a campaign has added to
# the corpus directories is kept.
mkdir -p corpus/assemble corpus/load corpus/execute corpus/alloc corpus/gc_oracle
for f in "$root"/asm/*.asm "$root"/tests/asm-errors/*.asm; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .asm)
    cp "$f" "corpus/assemble/seed-$name.asm"
    "$rcvm" asm "$f" -o "corpus/load/seed-$name.rcb" 2>/dev/null || true
done
{
    echo '# libFuzzer dictionary for the assemble target: mnemonics, directives, tokens.'
    echo '# Regenerate with fuzz/make-corpus.sh.'
    grep -oE '= 0x[0-9a-f]+, "[a-z]+"' "$root/src/bytecode/isa.rs" | sed -E 's/.*"([a-z]+)"/\1/' | awk '!seen[$0]++' | sed 's/.*/"&"/'
    for w in .func .end .source r0 r1 r255 r256 , : @ 0x 0b _ -9223372036854775808 ';' '\x41' '\n'; do
        printf '"%s"\n' "$(printf '%s' "$w" | sed 's/\\/\\\\/g; s/"/\\"/g')"
    done
    echo '"\""'
} > asm.dict
echo "corpus: $(ls corpus/assemble/seed-* | wc -l) seed texts, $(ls corpus/load/seed-* | wc -l) seed bytecode files"
