-- OPER accepted. ARGV: history, name (lower case), node.
redis.call('HSET', P .. 'opers', ARGV[2], ARGV[3])
return 1
