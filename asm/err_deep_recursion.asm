; err_deep_recursion.asm — unbounded recursion stops at --max-depth (default
; 10,000 frames) with a clean error; the host stack never grows. The call
; stack in the message is elided in the middle.
    li r0, 0
    call r1, down, r0
.func down 1
    add r0, r0, 1
    call r1, down, r0
    ret r1
.end
