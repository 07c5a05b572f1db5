-- loop: a 10,000,000-iteration integer loop (the sum of 0 .. 9,999,999).
local s = 0
for i = 0, 10000000 - 1 do
  s = s + i
end
print(s)
