; fib: recursive fib(27). Calls, returns and frame setup/teardown.
    li r0, 27
    call r1, fib, r0
    print r1                ; 196418

.func fib 1
    lt r1, r0, 2
    jz r1, recurse
    ret r0
recurse:
    sub r1, r0, 1
    call r1, fib, r1
    sub r2, r0, 2
    call r2, fib, r2
    add r1, r1, r2
    ret r1
.end
