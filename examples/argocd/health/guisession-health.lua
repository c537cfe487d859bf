-- Argo CD health of a GuiSession (lightsail.operators.dev/GuiSession), from the conditions the
-- operator writes (kstatus style): Stalled=True -> Degraded, Ready with reason Suspended ->
-- Suspended (settled: spec.suspend is the desired state), Ready=True -> Healthy (also during a
-- routine renewal, which keeps Ready=True), anything else (starting, retrying, not yet seen by the
-- operator) -> Progressing. Argo CD runs it with only the base and table libraries.
local hs = { status = "Progressing", message = "Waiting for the operator to report status" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
-- Conditions computed for an older spec say nothing about the current one.
local observed = obj.status.observedGeneration
if observed ~= nil and obj.metadata.generation ~= nil and observed < obj.metadata.generation then
  hs.message = "Waiting for the operator to observe generation " .. obj.metadata.generation
  return hs
end
local ready, stalled = nil, nil
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then
    ready = condition
  elseif condition.type == "Stalled" then
    stalled = condition
  end
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (stalled.reason or "Stalled") .. ": " .. (stalled.message or "")
  return hs
end
if ready ~= nil then
  if ready.reason == "Suspended" then
    hs.status = "Suspended"
  elseif ready.status == "True" then
    hs.status = "Healthy"
  end
  hs.message = ready.message or ""
end
return hs
