function detect(value)
  return value.nope.field
end
