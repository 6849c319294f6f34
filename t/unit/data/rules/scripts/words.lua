-- Reports every "secret-" word: exercises returned strings and their spans.
function detect(value)
  local out = {}
  for w in string.gmatch(value, "secret%-%w+") do
    out[#out + 1] = w
  end
  return out
end
