-- KICK, BAN, UNBAN (v2 section 5). ARGV: history, asker (as chosen), command
-- ('kick'|'ban'|'unban'), channel, target, reason, asker is a server operator ('1'/'0'),
-- ban list limit, the asker's node (a channel operator must be one through it). Returns {'done'}, {'not-operator'}, {'target-server-operator'},
-- {'not-member'}, {'full'} or {'not-banned'}.
local asker, cmd, ch, target, reason, oper = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local max_bans, node = tonumber(ARGV[8]), ARGV[9]
local a, t = string.lower(asker), string.lower(target)
if oper ~= '1' then
  local v = redis.call('HGET', ckey(ch, 'member'), a)
  if not v then return {'not-operator'} end
  local flags, owner = parse(v)
  if owner ~= node or flags:sub(1, 1) ~= 'o' then return {'not-operator'} end
end
if cmd ~= 'unban' and t ~= a and oper ~= '1'
    and redis.call('HEXISTS', P .. 'opers', t) == 1 then
  return {'target-server-operator'}
end
local function removal(verb)
  return function(name)
    local text = name .. ' was ' .. verb .. ' by ' .. asker
    if reason ~= '' then text = text .. ': ' .. reason end
    return text
  end
end
local bans = ckey(ch, 'bans')
if cmd == 'kick' then
  if not depart(ch, t, REMOVAL, removal('kicked'), asker, reason, 0) then
    return {'not-member'}
  end
elseif cmd == 'ban' then
  if redis.call('SISMEMBER', bans, t) == 0 then
    if redis.call('SCARD', bans) >= max_bans then return {'full'} end
    redis.call('SADD', bans, t)
  end
  depart(ch, t, REMOVAL, removal('banned'), asker, reason, 1)
else
  if redis.call('SREM', bans, t) == 0 then return {'not-banned'} end
end
return {'done'}
