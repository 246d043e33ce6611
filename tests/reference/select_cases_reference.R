# Reference for alliance_lib.select_sudden_gain_cases: suddengains 0.7.2's select_cases() on its
# own example data sgdata, re-implemented in base R from the package source (R/select_cases.R,
# milanwiedemann/suddengains, MIT): the availability of bdi_s1 ... bdi_s12 is pasted into a
# "TRUE FALSE ..." string and searched for the four patterns (method = "pattern"), or the
# non-missing values are counted (method = "min_sess"). suddengains itself is not installed here
# (CRAN is not reachable), so this script copies its string logic rather than calling it.
#
# Run from the repository root:  Rscript tests/reference/select_cases_reference.R
# Output: tests/reference/fixtures/sgdata_select_cases.csv (+ versions in the _info.txt file)

sg <- read.csv("tests/data/sgdata.csv")
vars <- paste0("bdi_s", 1:12)
avail <- !is.na(sg[, vars])
pattern_string <- apply(avail, 1, function(r) paste(ifelse(r, "TRUE", "FALSE"), collapse = " "))
patterns <- c("TRUE TRUE TRUE TRUE", "TRUE TRUE TRUE FALSE TRUE",
              "TRUE FALSE TRUE TRUE TRUE", "TRUE FALSE TRUE TRUE FALSE TRUE")
hit <- sapply(patterns, function(p) grepl(p, pattern_string, fixed = TRUE))
out <- data.frame(
  id = sg$id,
  n_sessions = rowSums(avail),
  select_pattern = apply(hit, 1, any),
  select_min_sess_9 = rowSums(avail) >= 9
)
out <- out[order(out$id), ]
write.csv(out, "tests/reference/fixtures/sgdata_select_cases.csv", row.names = FALSE)
writeLines(c(
  paste("select_cases_reference.R run with", R.version.string),
  paste("cases:", nrow(out), "; pattern selected:", sum(out$select_pattern),
        "; min_sess 9 selected:", sum(out$select_min_sess_9))
), "tests/reference/fixtures/sgdata_select_cases_info.txt")
