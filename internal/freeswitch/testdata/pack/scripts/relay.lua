-- relay.lua: the direct-message relay of Channels, a mod_lua hook on MESSAGE.
--
-- mod_verto turns a client's verto.info {msg: {to, body}} into a MESSAGE
-- event (proto "verto", dest_proto "GLOBAL") and delivers it nowhere itself.
-- This script sends it on with the chat API, verto|<from_user>|<to>@<domain>|<body>,
-- which mod_verto delivers as a verto.info to every connection logged in as
-- <to>@<domain>. The MESSAGE event the chat API fires in turn has proto
-- "global" and dest_proto "verto", so it is not relayed again.
--
-- `to` may be a bare client id or id@<domain>. Bodies are base64 in the
-- browser client; the chat API cuts a body at its first "|".

local domain = "channels.test"

if event:getHeader("proto") ~= "verto" or event:getHeader("dest_proto") ~= "GLOBAL" then
  return
end

local from = event:getHeader("from_user")
local to = event:getHeader("to")
local body = event:getBody()
if from == nil or from == "" or to == nil or to == "" or body == nil or body == "" then
  freeswitch.consoleLog("warning", "channels relay: MESSAGE without from_user, to or body\n")
  return
end

local user = to
local at = string.find(to, "@", 1, true)
if at ~= nil then
  user = string.sub(to, 1, at - 1)
  if user == "" or string.sub(to, at + 1) ~= domain then
    freeswitch.consoleLog("warning", "channels relay: not relaying to " .. to .. "\n")
    return
  end
end
if string.find(from, "|", 1, true) or string.find(user, "|", 1, true) then
  freeswitch.consoleLog("warning", "channels relay: '|' in from_user or to\n")
  return
end

freeswitch.API():execute("chat", "verto|" .. from .. "|" .. user .. "@" .. domain .. "|" .. body)
