-- report.lua: Channels' login and disconnect reports, a mod_lua hook on the
-- CUSTOM events verto::login and verto::client_disconnect.
--
-- It POSTs the event to Channels' /fsapi with the curl API (mod_curl). That
-- API sends no HTTP basic credentials, so the report carries the /fsapi
-- password in the "secret" field; /fsapi accepts that proof for these two
-- actions only, and only from its allowed networks. The curl API splits its
-- arguments on spaces and URL-decodes the post data once before sending
-- it, so values are URL-encoded twice: no spaces, and what goes out is
-- encoded once.
--
-- With the answers it keeps what relay.lua checks, and says who left:
--
-- * A successful login's answer names the client's channel, which goes
--   into mod_hash: hash insert/channels/<client id>/<channel id>.
-- * When a client's last socket has closed (mod_verto fires the event after
--   dropping the socket; its verto_contact API then finds none of the
--   client's left), the entry goes: mod_hash holds logged-in clients only.
--   If Channels cleared the client too (the socket was its latest login's),
--   the answer names the channel's other connected clients (members=1 asks
--   for them; at most 1,000), and each gets the leaver's leave notice,
--   {"t":"unavailable"}, with the chat API: how a member whose tab crashed
--   or whose network died leaves the others' lists.

local url = {{lua .FSAPIURL}}
local secret = {{lua .Password}}
local domain = {{lua .Domain}}
local timeout = {{lua .Timeout}}
-- base64 of the UTF-8 JSON {"t":"unavailable"}, as browsers encode bodies.
local unavailable = "eyJ0IjoidW5hdmFpbGFibGUifQ=="

local actions = {
  ["verto::login"] = "verto_client_login",
  ["verto::client_disconnect"] = "verto_client_disconnect",
}
local action = actions[event:getHeader("Event-Subclass") or ""]
if action == nil then
  return
end
-- A socket that closes without ever logging in (a port check, a failed
-- handshake) fires verto::client_disconnect with an empty or no
-- verto_login. No login, no client for Channels to mark: skip the report,
-- which /fsapi would only answer "not found".
local login = event:getHeader("verto_login")
if login == nil or login == "" then
  return
end
local leaving = action == "verto_client_disconnect"

local function encode(s)
  if s == nil then
    return ""
  end
  return (string.gsub(s, "[^A-Za-z0-9_.~-]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

local fields = {
  { "action", action },
  { "login", login },
  { "sessid", event:getHeader("verto_sessid") },
  { "success", event:getHeader("verto_success") },
  { "address", event:getHeader("verto_client_address") },
  { "hostname", event:getHeader("FreeSWITCH-Hostname") },
}
if leaving then
  fields[#fields + 1] = { "members", "1" }
end
fields[#fields + 1] = { "secret", secret }
local parts = {}
for i, f in ipairs(fields) do
  parts[i] = f[1] .. "=" .. string.gsub(encode(f[2]), "%%", "%%25")
end

local api = freeswitch.API()
local reply = api:execute("curl", url .. " timeout " .. timeout .. " post " .. table.concat(parts, "&")) or ""
local ok = string.find(reply, '<result status="ok"', 1, true) ~= nil
if not ok then
  freeswitch.consoleLog("warning", "channels report " .. action .. " " .. login ..
    " not taken: " .. reply .. "\n")
end

-- A client id: a UUID in canonical lower case, as Channels makes them.
local x = "[0-9a-f]"
local uuid = "^" .. string.rep(x, 8) .. "%-" .. string.rep(x, 4) .. "%-" .. string.rep(x, 4) ..
  "%-" .. string.rep(x, 4) .. "%-" .. string.rep(x, 12) .. "$"
local id = string.match(login, "^[^@]*")
if not string.find(id, uuid) then
  return
end

if not leaving then
  if ok and event:getHeader("verto_success") == "1" then
    local channel = string.match(reply, ' channel="([^"]*)"')
    if channel ~= nil and string.find(channel, uuid) then
      api:execute("hash", "insert/channels/" .. id .. "/" .. channel)
    else
      freeswitch.consoleLog("warning", "channels report: no channel for " .. id ..
        ", whose messages will not be relayed\n")
    end
  end
  return
end

-- Another socket of the client still logged in: it has not left.
local contact = api:execute("verto_contact", id .. "@" .. domain) or ""
if not string.find(contact, "error/user_not_registered", 1, true) then
  return
end
api:execute("hash", "delete/channels/" .. id)
if not ok or not string.find(reply, ' cleared="true"', 1, true) then
  return
end
for member in string.gmatch(string.match(reply, ' members="([^"]*)"') or "", "[^,]+") do
  if member ~= id and string.find(member, uuid) then
    api:execute("chat", "verto|" .. id .. "|" .. member .. "@" .. domain .. "|" .. unavailable)
  end
end
