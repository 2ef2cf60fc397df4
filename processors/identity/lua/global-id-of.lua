-- global-id-of (read-only): current root per identity key. ARGV: 1 base, 2.. identity keys. Returns root or ''.
local reply = {}
for i = 2, #ARGV do
  reply[#reply + 1] = rootOfKey(ARGV[i], false) or ''
end
return reply
