; `print` needs at least one register. An empty `print` is an assembly
; error at its line, reported together with the other errors in the file.
    li r0, 1
    print
    li r1
    print r0
.func f
    print
.end
