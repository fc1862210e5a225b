-- BAN * and UNBAN * (v2 section 5). ARGV: history, 'ban' or 'unban', target name (ban)
-- or address (unban). Returns {'done'}, {'not-connected'} or {'not-banned'}.
local cmd, arg = ARGV[2], ARGV[3]
local address = arg
if cmd == 'ban' then
  local v = redis.call('GET', P .. 'name:' .. string.lower(arg))
  if not v then return {'not-connected'} end
  address = string.match(v, '^%S+ (%S+)$')
  if not address then return {'not-connected'} end
  redis.call('SADD', P .. 'server-bans', address)
elseif redis.call('SREM', P .. 'server-bans', address) == 0 then
  return {'not-banned'}
end
redis.call('PUBLISH', P .. 'control', cmd .. ' ' .. address)
return {'done'}
