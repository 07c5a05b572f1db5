; immediates out of their range
    new r1, 65536
    new r1, -1
    gc r0, 3
    gccount r0, -1
    gcthreshold 700, -1, 10
