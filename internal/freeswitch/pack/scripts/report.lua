-- report.lua: Channels' login and disconnect reports, a mod_lua hook on the
-- CUSTOM events verto::login and verto::client_disconnect.
--
-- It POSTs the event to Channels' /fsapi with the curl API (mod_curl). That
-- API sends no HTTP basic credentials, so the report carries the /fsapi
-- password in the "secret" field; /fsapi accepts that proof for these two
-- actions only, and only from its allowed networks. Values are URL-encoded,
-- so the post data has no spaces (the curl API splits its arguments on them).

local url = {{lua .FSAPIURL}}
local secret = {{lua .Password}}

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
  { "secret", secret },
}
local parts = {}
for i, f in ipairs(fields) do
  parts[i] = f[1] .. "=" .. encode(f[2])
end

local reply = freeswitch.API():execute("curl", url .. " post " .. table.concat(parts, "&"))
if reply == nil or not string.find(reply, 'status="ok"', 1, true) then
  freeswitch.consoleLog("warning", "channels report " .. action .. " " .. login ..
    " not taken: " .. tostring(reply) .. "\n")
end
