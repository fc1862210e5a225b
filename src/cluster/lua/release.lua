-- A closed connection's name. ARGV: history, name (lower case), the value it was held
-- with, node. Deleted only while it is still this node's.
local key = P .. 'name:' .. ARGV[2]
if redis.call('GET', key) == ARGV[3] then redis.call('DEL', key) end
if redis.call('HGET', P .. 'opers', ARGV[2]) == ARGV[4] then
  redis.call('HDEL', P .. 'opers', ARGV[2])
end
return 1
