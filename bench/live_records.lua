-- live_records: 1,000,000 live 2-element tables held in one table at once.
local t = {}
for i = 0, 1000000 - 1 do
  t[#t + 1] = { i, i }
end
print(#t)
