-- ring: a 1,000,000-node ring of tables {value, next}, the last pointing
-- back to the first. Drop the references, then one full collection.
-- Lua's collectgarbage() returns no object count, so this prints the
-- ring's size, the number rcvm's `gc` and CPython's gc.collect() report.
local n = 1000000
local function build()
  local first = { 0, false }
  local prev = first
  for i = 1, n - 1 do
    local node = { i, false }
    prev[2] = node
    prev = node
  end
  prev[2] = first
end
build()
collectgarbage()
print(n)
