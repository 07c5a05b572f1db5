-- gc_full: 1,000,000 live tables in a table, then 10 full collections
-- (collectgarbage("collect") returns 0).
local t = {}
for i = 0, 1000000 - 1 do
  t[#t + 1] = { i, false }
end
local total = 0
for _ = 1, 10 do
  total = total + collectgarbage("collect")
end
print(#t .. " " .. total)
