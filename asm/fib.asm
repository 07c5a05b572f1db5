; fib.asm — recursion on the VM's own stack.
; fib(27) makes 832,039 calls; each frame lives on rcvm's register stack,
; never the host's, so recursion depth is limited only by --max-depth.
; expect: 196418
    li r0, 27
    call r1, fib, r0        ; fib is defined below: calls may come first
    print r1

.func fib 1                 ; one argument, arriving in r0
    lt r1, r0, 2            ; compare-and-branch pairs like this one are
    jz r1, recurse          ; fused by the interpreter (one dispatch)
    ret r0
recurse:
    sub r1, r0, 1
    call r1, fib, r1
    sub r2, r0, 2
    call r2, fib, r2
    add r1, r1, r2
    ret r1
.end
