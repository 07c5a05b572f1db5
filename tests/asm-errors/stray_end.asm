; an .end without .func
    halt
.end
