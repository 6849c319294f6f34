-- Fixture script: reports each "secret-" word.
function detect(value)
  local out = {}
  for w in string.gmatch(value, "secret%-%w+") do
    out[#out + 1] = w
  end
  return out
end
