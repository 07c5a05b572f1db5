; strings.asm — strings are immutable objects; `add` of two strings makes a
; new one; `len` counts bytes (UTF-8). At top level `print` writes the raw
; text; inside a container a string is quoted with escapes.
    str r1, "Hello, "
    str r2, "wörld"
    add r3, r1, r2
    print r3                ; Hello, wörld
    len r4, r3
    print r4                ; 13 (ö is two bytes)
    str r5, "tab\there \"quoted\"\n\\ \x41"
    print r5
    list r6
    push r6, r5
    push r6, r3
    print r6
    eq r7, r3, r3
    str r8, "Hello, wörld"
    eq r9, r3, r8           ; strings compare by value
    refcount r10, r3
    print r7, r9, r10       ; 1 1 2
