/**
 * The Lua scripts behind the context store. Each runs atomically on the one Redis node that
 * owns the session's hash slot; all three keys of a session share the hash tag `{<id>}`.
 *
 * KEYS[1] `...:msgs`  list, oldest first, of entries `<tokens> <json>` (the token count in
 *                     front lets the scripts add up a window without decoding JSON)
 * KEYS[2] `...:ids`   sorted set of the newest message ids, scored by sequence number
 * KEYS[3] `...:meta`  hash: `seq` (last sequence number), `tokens` (sum over stored messages)
 */

/**
 * Append. ARGV: ttlMs, cap, dedupeWindow, n, then n pairs (id, entry).
 * Skips ids the session already holds, pushes the rest, trims the oldest beyond `cap`, forgets
 * ids beyond `dedupeWindow`, keeps the token sum, and refreshes the TTL of every key.
 * Returns { stored, trimmed, totalMessages, totalTokens, duplicateIndex... } (1-based indexes).
 */
export const APPEND_LUA = `
local ttl = ARGV[1]
local cap = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local seq = tonumber(redis.call('HGET', KEYS[3], 'seq') or '0')
local stored = 0
local delta = 0
local dups = {}
for i = 1, n do
  local id = ARGV[3 + 2 * i]
  local entry = ARGV[4 + 2 * i]
  if redis.call('ZSCORE', KEYS[2], id) then
    dups[#dups + 1] = i
  else
    seq = seq + 1
    redis.call('ZADD', KEYS[2], seq, id)
    redis.call('RPUSH', KEYS[1], entry)
    stored = stored + 1
    delta = delta + tonumber(string.match(entry, '^(%d+) '))
  end
end
local len = redis.call('LLEN', KEYS[1])
local trimmed = 0
if len > cap then
  trimmed = len - cap
  local old = redis.call('LRANGE', KEYS[1], 0, trimmed - 1)
  for _, e in ipairs(old) do
    delta = delta - tonumber(string.match(e, '^(%d+) '))
  end
  redis.call('LTRIM', KEYS[1], trimmed, -1)
  len = cap
end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(window + 1))
redis.call('HSET', KEYS[3], 'seq', seq)
local total = redis.call('HINCRBY', KEYS[3], 'tokens', delta)
if len == 0 then
  -- Nothing stored (cannot happen with n >= 1 and cap >= 1); keep no empty bookkeeping.
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
else
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
local out = { stored, trimmed, len, total }
for _, d in ipairs(dups) do out[#out + 1] = d end
return out
`;

/**
 * Read a window. ARGV: ttlMs, maxMessages, maxTokens.
 * Walks back from the newest message and stops at the first that would break either bound,
 * so the window is contiguous and ends with the newest message. Refreshes the TTL of every key
 * when the session exists.
 * Returns { totalMessages, totalTokens, windowTokens, json... } with the JSON newest first.
 */
export const READ_LUA = `
local len = redis.call('LLEN', KEYS[1])
if len == 0 then return { 0, 0, 0 } end
local ttl = ARGV[1]
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
local maxMessages = tonumber(ARGV[2])
local maxTokens = tonumber(ARGV[3])
local total = tonumber(redis.call('HGET', KEYS[3], 'tokens') or '0')
local out = { len, total, 0 }
if maxMessages == 0 then return out end
-- Walk back from the newest in chunks, so a tight token budget never loads the whole list.
local used = 0
local fetched = 0
local full = false
while not full and fetched < maxMessages do
  local take = math.min(32, maxMessages - fetched)
  local entries = redis.call('LRANGE', KEYS[1], -(fetched + take), -(fetched + 1))
  for i = #entries, 1, -1 do
    local e = entries[i]
    local sp = string.find(e, ' ', 1, true)
    local t = tonumber(string.sub(e, 1, sp - 1))
    if used + t > maxTokens then
      full = true
      break
    end
    used = used + t
    out[#out + 1] = string.sub(e, sp + 1)
  end
  fetched = fetched + #entries
  if #entries < take then break end
end
out[3] = used
return out
`;
