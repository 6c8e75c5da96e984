-- Argo CD health check for mcp.reconciler.dev resources (MCPServer, MCPConnection, MCPAccessGrant and
-- MCPTemplateBinding share this script). The order of checks and the reasons are explained in docs/argocd.md.
-- Argo CD runs it with the base, table and a safe os library only: no string or math functions here.
local hs = {}

-- Synced=False with one of these reasons needs a human (fix the spec, a reference or a conflicting row).
local terminalSyncReasons = {
  InvalidSpec = true,
  MissingReference = true,
  Conflict = true,
  ReconcileError = true,
}

-- Ready=False with one of these reasons will not fix itself by retrying. Other reasons (Creating,
-- Unavailable, TransportError, Timeout, DownstreamError...) are retried by the operator: Progressing.
local terminalReadyReasons = {
  SecretNotFound = true,
  Conflict = true,
  AuthError = true,
  InsufficientScope = true,
  ToolsNotApproved = true,
  ToolRiskChanged = true,
  Blocked = true,
  InvalidSpec = true,
  MissingReference = true,
  TLSError = true,
}

local function findCondition(conditions, conditionType)
  for _, condition in ipairs(conditions) do
    if condition.type == conditionType then
      return condition
    end
  end
  return nil
end

local function describe(condition)
  local text = condition.reason or condition.type
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

local function result(status, message)
  hs.status = status
  hs.message = message
  return hs
end

-- 1. Deletion: Argo CD reports "Pending deletion" itself; say the same when the script runs alone.
if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  return result("Progressing", "Pending deletion")
end

-- 2. Nothing reported yet.
if obj.status == nil or obj.status.conditions == nil or next(obj.status.conditions) == nil then
  return result("Progressing", "Waiting for operator")
end

-- 3. The status describes an older spec.
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= generation then
  return result("Progressing", "Waiting for operator to observe generation " .. tostring(generation))
end

local conditions = obj.status.conditions
local ready = findCondition(conditions, "Ready")
local synced = findCondition(conditions, "Synced")

local function stale(condition)
  return condition ~= nil and generation ~= nil and condition.observedGeneration ~= nil
    and condition.observedGeneration ~= generation
end
if stale(ready) or stale(synced) then
  return result("Progressing", "Waiting for operator to observe generation " .. tostring(generation))
end

-- 4. Paused on purpose.
if synced ~= nil and synced.reason == "ReconcilePaused" then
  return result("Suspended", describe(synced))
end

-- 5. Failures that need a human.
if synced ~= nil and synced.status == "False" and terminalSyncReasons[synced.reason] then
  return result("Degraded", describe(synced))
end
if ready ~= nil and ready.status == "False" and terminalReadyReasons[ready.reason] then
  return result("Degraded", describe(ready))
end

-- 6. Registered and usable.
if ready ~= nil and synced ~= nil and ready.status == "True" and synced.status == "True" then
  if ready.message ~= nil and ready.message ~= "" then
    return result("Healthy", ready.message)
  end
  return result("Healthy", "Ready")
end

-- 7. Anything else is still converging.
if ready == nil or synced == nil then
  return result("Progressing", "Waiting for the Ready and Synced conditions")
end
if ready.status ~= "True" then
  return result("Progressing", describe(ready))
end
return result("Progressing", describe(synced))
