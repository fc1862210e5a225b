-- KaiChat cluster scripts: what every script shares (docs/CLUSTER.md has the key layout).
-- Each script is this prelude followed by its body; ARGV[1] is always the history limit.
local P = 'kc:'
local HISTORY = tonumber(ARGV[1])
local CHAT, NOTICE, REMOVAL, OPERATOR = 0, 1, 2, 3

local function ckey(ch, part)
  return P .. '{' .. ch .. '}:' .. part
end

-- A member's record: '<o|-><p|-> <node> <name as chosen>'.
local function record(flags, node, name)
  return flags .. ' ' .. node .. ' ' .. name
end

local function parse(v)
  local flags, node, name = string.match(v, '^(%S%S) (%S+) (.+)$')
  return flags, node, name
end

-- Appends an entry to the channel's stream and publishes it; returns its sequence number.
local function append(ch, kind, sender, text, target, by, reason, banned)
  local meta = ckey(ch, 'meta')
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local last = tonumber(redis.call('HGET', meta, 'ms') or '0')
  if ms < last then ms = last end
  redis.call('HSET', meta, 'ms', string.format('%d', ms))
  local payload = string.format('%d %d %d %d %d %d %d %d\n', seq, kind, ms, #sender,
    #target, #by, #reason, banned) .. sender .. target .. by .. reason .. text
  local id = redis.call('XADD', ckey(ch, 'log'), 'MAXLEN', '~', HISTORY, '*', 'e', payload)
  redis.call('PUBLISH', ckey(ch, 'live'), id .. ' ' .. payload)
  return seq
end

-- Hands operator on when none is left: the earliest joiner that speaks version 2, else
-- the earliest joiner (v2 section 4).
local function succession(ch)
  local members = ckey(ch, 'member')
  local order = redis.call('ZRANGE', ckey(ch, 'order'), 0, -1)
  local heir, heir_v1
  for _, lower in ipairs(order) do
    local flags = string.sub(redis.call('HGET', members, lower) or '--', 1, 2)
    if string.sub(flags, 1, 1) == 'o' then return end
    if heir == nil and string.sub(flags, 2, 2) == 'p' then heir = lower end
    if heir_v1 == nil then heir_v1 = lower end
  end
  heir = heir or heir_v1
  if heir == nil then return end
  local flags, node, name = parse(redis.call('HGET', members, heir))
  redis.call('HSET', members, heir, record('o' .. string.sub(flags, 2, 2), node, name))
  append(ch, OPERATOR, '', name .. ' is now an operator', '', '', '', 0)
end

-- Takes member `lower` out of channel `ch` with the entry `text(name)` of `kind`, then
-- closes the channel (no member left) or hands operator on. False if not a member, or
-- (with `of_node`) a member through another node.
local function depart(ch, lower, kind, text, by, reason, banned, of_node)
  local members = ckey(ch, 'member')
  local v = redis.call('HGET', members, lower)
  if not v then return false end
  local flags, node, name = parse(v)
  if of_node and node ~= of_node then return false end
  redis.call('HDEL', members, lower)
  redis.call('ZREM', ckey(ch, 'order'), lower)
  local index = P .. 'node:' .. node .. ':members'
  if redis.call('HGET', index, lower) == ch then redis.call('HDEL', index, lower) end
  local target = ''
  if kind == REMOVAL then target = name end
  append(ch, kind, '', text(name), target, by, reason, banned)
  if redis.call('ZCARD', ckey(ch, 'order')) == 0 then
    -- The channel closes and its history goes, as on a single server (its ban list
    -- stays). The counter and clock stay a day, so that numbers and time stamps go on
    -- rising for a server still holding a copy.
    redis.call('ZREM', P .. 'channels', ch)
    redis.call('DEL', ckey(ch, 'log'))
    redis.call('PEXPIRE', ckey(ch, 'meta'), 86400000)
  elseif string.sub(flags, 1, 1) == 'o' then
    succession(ch)
  end
  return true
end

local function left(name) return name .. ' left' end

-- Adds `name` (`lower`) of node `node` to channel `ch`; the first member is its operator.
-- Returns the sequence number of the `<name> joined` entry, or (`silent`: the member was
-- there all along, as far as anyone saw) adds none and returns 0; a silent member that
-- becomes operator is announced all the same (a new operator is never silent).
local function enter(ch, lower, name, node, push, silent)
  local joins = redis.call('HINCRBY', ckey(ch, 'meta'), 'joins', 1)
  redis.call('PERSIST', ckey(ch, 'meta'))
  local flags = '-'
  if redis.call('ZCARD', ckey(ch, 'order')) == 0 then flags = 'o' end
  if push == '1' then flags = flags .. 'p' else flags = flags .. '-' end
  redis.call('ZADD', ckey(ch, 'order'), joins, lower)
  redis.call('HSET', ckey(ch, 'member'), lower, record(flags, node, name))
  redis.call('HSET', P .. 'node:' .. node .. ':members', lower, ch)
  redis.call('ZADD', P .. 'channels', 0, ch)
  if silent then
    if flags:sub(1, 1) == 'o' then
      append(ch, OPERATOR, '', name .. ' is now an operator', '', '', '', 0)
    end
    return 0
  end
  return append(ch, NOTICE, '', name .. ' joined', '', '', '', 0)
end
