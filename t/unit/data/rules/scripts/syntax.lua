function detect(value)
  return {
end
