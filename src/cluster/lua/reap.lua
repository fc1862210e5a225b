-- Removes the members of nodes whose lease ran out (they died), writing each `<name>
-- left` once: the script runs whole, so two nodes reaping at once cannot both write it.
-- Whom it removed is kept an hour (`kc:node:<node>:reaped`) for the node's resync.
-- ARGV: history, this node. Returns the number of members removed.
local me = ARGV[2]
local removed = 0
for _, node in ipairs(redis.call('SMEMBERS', P .. 'nodes')) do
  if node ~= me and redis.call('EXISTS', P .. 'node:' .. node) == 0 then
    local index = P .. 'node:' .. node .. ':members'
    -- Whom the channels were told left: if the node comes back (it was only cut off), its
    -- members are joined again with a `joined` entry, not silently (resync.lua).
    local reaped = P .. 'node:' .. node .. ':reaped'
    local list = redis.call('HGETALL', index)
    for i = 1, #list, 2 do
      if depart(list[i + 1], list[i], NOTICE, left, '', '', 0, node) then
        removed = removed + 1
        redis.call('HSET', reaped, list[i], list[i + 1])
      end
    end
    redis.call('PEXPIRE', reaped, 3600000)
    redis.call('DEL', index)
    local opers = redis.call('HGETALL', P .. 'opers')
    for i = 1, #opers, 2 do
      if opers[i + 1] == node then redis.call('HDEL', P .. 'opers', opers[i]) end
    end
    redis.call('SREM', P .. 'nodes', node)
  end
end
return removed
