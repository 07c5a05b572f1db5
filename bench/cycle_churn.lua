-- cycle_churn: 1,000,000 two-table cycles (a -> b, b -> a), each dropped
-- at once and left to the default incremental collector.
local n = 0
for i = 1, 1000000 do
  local a = { false }
  local b = { a }
  a[1] = b
  n = i
end
print(n)
