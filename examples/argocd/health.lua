-- Argo CD health of flotilla.dev Registry and ReplicationPolicy, from their standard
-- conditions. Installed by argocd-cm.yaml (same text for both kinds).
local hs = {status = "Progressing", message = "waiting for Flotilla to report status"}
-- A suspended policy is Suspended whatever its status says (the operator does not sync it, so it
-- may never write one).
if obj.kind == "ReplicationPolicy" and obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true"
  return hs
end
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local gen = obj.metadata.generation
if gen ~= nil and obj.status.observedGeneration ~= nil and obj.status.observedGeneration < gen then
  hs.message = "Flotilla has not yet observed generation " .. gen
  return hs
end
local c = {}
for _, cond in ipairs(obj.status.conditions) do
  -- A condition about an older generation says nothing about the current spec.
  if gen == nil or cond.observedGeneration == nil or cond.observedGeneration >= gen then
    c[cond.type] = cond
  end
end
local ready, degraded = c["Ready"], c["Degraded"]
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = (degraded.reason or "") .. ": " .. (degraded.message or "")
  return hs
end
if ready == nil then
  return hs
end
hs.message = (ready.reason or "") .. ": " .. (ready.message or "")
if ready.status == "True" then
  hs.status = "Healthy"
  return hs
end
-- Not ready: still converging (rollout, first or running sync), or stuck on a problem the
-- user must fix (invalid spec, missing Secret: any other reason).
local busy = (c["Progressing"] ~= nil and c["Progressing"].status == "True")
  or (c["Syncing"] ~= nil and c["Syncing"].status == "True")
  or ready.reason == "OutOfSync" or ready.reason == "Progressing" or ready.reason == "RegistryNotReady"
if busy then
  hs.status = "Progressing"
else
  hs.status = "Degraded"
end
return hs
