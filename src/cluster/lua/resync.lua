-- After a (re)connect: makes Redis hold exactly this node's members, as the node knows
-- them. ARGV: history, node, then (name, channel, push '1'/'0') triples. A member Redis
-- lost (a Redis restart without persistence) is put back silently: for everyone it never
-- left. One whose `left` was written (the node's lease ran out, reap.lua) is joined again
-- with a `joined` entry. Members Redis has that the node no longer has are removed, with
-- `left`. Returns the number of changes.
local node = ARGV[2]
local index = P .. 'node:' .. node .. ':members'
local reaped = P .. 'node:' .. node .. ':reaped'
local want = {}
local changes = 0
for i = 3, #ARGV, 3 do
  local name, ch, push = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local lower = string.lower(name)
  local v = redis.call('HGET', ckey(ch, 'member'), lower)
  local _, owner = nil, nil
  if v then _, owner = parse(v) end
  -- Only a name this node still holds (renew.lua ran first): one another node's client
  -- took is that client's, and this node closes its own.
  local holder = redis.call('GET', P .. 'name:' .. lower)
  local held = holder and holder:sub(1, #node + 1) == node .. ' '
  if held then want[lower] = ch end
  if held and owner ~= node then
    local was = redis.call('HGET', index, lower)
    if was and was ~= ch then depart(was, lower, NOTICE, left, '', '', 0, node) end
    if v then depart(ch, lower, NOTICE, left, '', '', 0) end
    local told = redis.call('HGET', reaped, lower) == ch
    enter(ch, lower, name, node, push, not (told or v or was))
    changes = changes + 1
  end
end
local list = redis.call('HGETALL', index)
for i = 1, #list, 2 do
  if want[list[i]] ~= list[i + 1] then
    depart(list[i + 1], list[i], NOTICE, left, '', '', 0, node)
    redis.call('HDEL', index, list[i])
    changes = changes + 1
  end
end
redis.call('DEL', reaped)
-- Server operators of an earlier run of this node (killed, restarted at once): the node
-- registers its own again after this script.
local opers = redis.call('HGETALL', P .. 'opers')
for i = 1, #opers, 2 do
  if opers[i + 1] == node then redis.call('HDEL', P .. 'opers', opers[i]) end
end
return changes
