; undefined and duplicate functions
    call r0, fiib
.func fib 1
    ret r0
.end
.func fib
    ret
.end
