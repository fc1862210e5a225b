-- The node's lease and its names' leases, renewed together. ARGV: history, node, lease ms,
-- then name (lower case) and value pairs. Returns {1 if the node's lease was still there
-- else 0, names no longer this node's}.
local node, lease = ARGV[2], ARGV[3]
local existed = redis.call('SET', P .. 'node:' .. node, '1', 'PX', lease, 'GET')
redis.call('SADD', P .. 'nodes', node)
local lost = {}
for i = 4, #ARGV, 2 do
  local key = P .. 'name:' .. ARGV[i]
  local v = redis.call('GET', key)
  if v == ARGV[i + 1] then
    redis.call('PEXPIRE', key, lease)
  elseif not v then
    redis.call('SET', key, ARGV[i + 1], 'PX', lease)
  else
    table.insert(lost, ARGV[i])
  end
end
if existed then return {1, lost} end
return {0, lost}
