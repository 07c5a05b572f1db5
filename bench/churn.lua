-- churn: 5,000,000 short-lived 4-element tables, left to the incremental
-- collector.
local r
for i = 0, 5000000 - 1 do
  r = { i, i, i, i }
end
print(r[4])
