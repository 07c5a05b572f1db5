; a .func without .end
    halt
.func f
    ret
