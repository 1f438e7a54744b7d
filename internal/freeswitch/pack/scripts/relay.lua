-- relay.lua: the direct-message relay of Channels, a mod_lua hook on MESSAGE.
--
-- mod_verto turns a client's verto.info {msg: {to, body}} into a MESSAGE
-- event (proto "verto", dest_proto "GLOBAL") and delivers it nowhere itself.
-- This script sends it on with the chat API, verto|<from>|<to>@<domain>|<body>,
-- which mod_verto delivers as a verto.info to every connection logged in as
-- <to>@<domain> -- but only between clients of one channel, as browsers
-- admit a peer on the strength of the relay's "from". report.lua keeps the
-- channel of every logged-in client in mod_hash (realm "channels": client
-- id -> channel id); two lookups there, in memory, are the check. A client
-- missing there (not logged in, unknown) is neither sender nor target.
--
-- The sender is the "from" header, <id>@<domain> of the socket's login.
-- from_user is not to be trusted: mod_verto copies every from_* key of msg
-- into the event, and a key "from_user[0]" replaces from_user's value.
--
-- The MESSAGE event the chat API fires in turn has proto "global" and
-- dest_proto "verto", so it is not relayed again. `to` may be a bare client
-- id or id@<domain>. Bodies are base64 in the browser client; the chat API
-- cuts a body at its first "|". Refusals are logged without the body.

local domain = {{lua .Domain}}

if event:getHeader("proto") ~= "verto" or event:getHeader("dest_proto") ~= "GLOBAL" then
  return
end

-- A client id: a UUID in canonical lower case, as Channels makes them.
local x = "[0-9a-f]"
local id = "(" .. string.rep(x, 8) .. "%-" .. string.rep(x, 4) .. "%-" .. string.rep(x, 4) ..
  "%-" .. string.rep(x, 4) .. "%-" .. string.rep(x, 12) .. ")"
local at = "@" .. string.gsub(domain, "%p", "%%%0")
local sender = event:getHeader("from") or ""
local from = string.match(sender, "^" .. id .. at .. "$")
local to = event:getHeader("to") or ""
local target = string.match(to, "^" .. id .. "$") or string.match(to, "^" .. id .. at .. "$")
local body = event:getBody() or ""

local why
if from == nil then
  why = "no client sent it"
elseif event:getHeader("from_user") ~= from then
  why = "from_user " .. (event:getHeader("from_user") or "(none)") .. " is not the sender"
elseif target == nil then
  why = "no client to send to"
elseif body == "" then
  why = "no body"
else
  local api = freeswitch.API()
  local channel = api:execute("hash", "select/channels/" .. from) or ""
  if not string.find(channel, "^" .. id .. "$") then
    why = "sender's channel unknown (" .. channel .. ")"
  elseif api:execute("hash", "select/channels/" .. target) ~= channel then
    why = "not a logged-in client of the sender's channel"
  else
    api:execute("chat", "verto|" .. from .. "|" .. target .. "@" .. domain .. "|" .. body)
    return
  end
end
-- Values from clients, cut short and made printable.
local line = "not relaying from " .. sender .. " to " .. to .. ": " .. why
freeswitch.consoleLog("warning", "channels relay: " .. string.gsub(string.sub(line, 1, 300), "[^%w%p ]", "?") .. "\n")
