-- deep_free: build a 1,000,000-node chain of tables {value, next}, then
-- drop the head and run a full collection so the chain is freed at once.
local head = nil
for i = 0, 1000000 - 1 do
  head = { i, head }
end
local v = head[1]
head = nil
collectgarbage()
print(v)
