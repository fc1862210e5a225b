-- The node's lease and its names' leases, renewed together. ARGV: history, node, lease ms,
-- this run's instance token, then name (lower case) and value pairs. Returns {'taken',
-- ms left} when another run holds the node's lease (a second server with this node id,
-- or this server's previous run killed less than a lease ago), changing nothing; else
-- {1 if the node's lease was still there else 0, names no longer this node's}. A name
-- whose key is gone (Redis lost it) is taken again.
local node, lease, token = ARGV[2], ARGV[3], ARGV[4]
local key = P .. 'node:' .. node
local old = redis.call('GET', key)
if old and old ~= token then return {'taken', redis.call('PTTL', key)} end
redis.call('SET', key, token, 'PX', lease)
redis.call('SADD', P .. 'nodes', node)
local lost = {}
for i = 5, #ARGV, 2 do
  local name = P .. 'name:' .. ARGV[i]
  local v = redis.call('GET', name)
  if v == ARGV[i + 1] then
    redis.call('PEXPIRE', name, lease)
  elseif not v then
    redis.call('SET', name, ARGV[i + 1], 'PX', lease)
  else
    table.insert(lost, ARGV[i])
  end
end
if old then return {1, lost} end
return {0, lost}
