# Independent base-R reference for alliance_lib.change.sudden_gains / sudden_losses / count_intervals.
#
# Written from the description of suddengains 0.7.2 (Wiedemann et al.; identify_sg, identify_sl,
# create_bysg) in ../shared/reference/methods.md section 1, NOT from alliance_lib's Python code, and
# without suddengains itself (CRAN is not reachable here). Only base R is used.
#
# Run from the repository root:
#   Rscript tests/reference/sudden_gains_reference.R
# Input : tests/data/sgdata.csv (suddengains' example data, MIT; see tests/data/README.md)
# Output: tests/reference/fixtures/sgdata_sudden_intervals.csv  one row per client x tested interval
#         tests/reference/fixtures/sgdata_sudden_events.csv     one row per gain / loss (bysg layout)
#         tests/reference/fixtures/sudden_gains_reference_info.txt  R version and settings
#
# Settings = suddengains defaults on BDI sessions 1-12: cutoff 7, pct .25, crit3 with the critical t
# adjusted for missing values (alpha .05), identify_sg_1to2 = FALSE, tx start s1, tx end s12.
#
# Three variants are written (column `kind`):
#   gain          suddengains' identify_sg semantics.
#   loss          sudden losses with the 25 % criterion applied in the direction of the loss
#                 (post - pre >= pct * pre), as alliance_lib does.
#   loss_sg_quirk suddengains' identify_sl semantics, whose criterion 2 is
#                 (pre - post <= pct * pre), i.e. true for every increase with pct = .25.
# Reversal: `reversal` looks at every session after the postgain session (N+2 onward, the Tang &
# DeRubeis definition); `reversal_sg_quirk` reproduces create_bysg, which only looks from N+3 onward.
# Change proportion: magnitude / tx_change; NA when tx_change is 0 (suddengains keeps +Inf).

data_path <- "tests/data/sgdata.csv"
out_dir <- "tests/reference/fixtures"

sg <- read.csv(data_path, na.strings = "NA")
sg <- sg[order(sg$id), ]
sessions <- 1:12
x_all <- as.matrix(sg[, paste0("bdi_s", sessions)])
ids <- sg$id
K <- ncol(x_all)

cutoff <- 7
pct <- 0.25
alpha <- 0.05

window_stats <- function(v) {
  v <- v[!is.na(v)]
  n <- length(v)
  if (n == 0) return(c(n = 0, m = NA, s = NA))
  c(n = n, m = mean(v), s = if (n > 1) sd(v) else NA)
}

# One row per client x interval j (R column j compares x[j-1] with x[j]), j = 3 .. K-1.
rows <- list()
for (i in seq_len(nrow(x_all))) {
  x <- x_all[i, ]
  for (j in 3:(K - 1)) {
    pre <- x[j - 1]
    post <- x[j]
    pre_w <- window_stats(x[max(1, j - 3):(j - 1)])
    post_w <- window_stats(x[j:min(K, j + 2)])
    if (pre_w["n"] >= 2 && post_w["n"] >= 2) {
      df <- pre_w["n"] + post_w["n"] - 2
      tcrit <- abs(qt(alpha / 2, df = df))
      sp <- sqrt(((pre_w["n"] - 1) * pre_w["s"]^2 + (post_w["n"] - 1) * post_w["s"]^2) / df)
      c3_gain <- as.numeric(pre_w["m"] - post_w["m"] > tcrit * sp)
      c3_loss <- as.numeric(post_w["m"] - pre_w["m"] > tcrit * sp)
    } else {
      tcrit <- NA
      c3_gain <- NA
      c3_loss <- NA
    }
    # Comparisons with an NA give NA (R semantics), products keep NA.
    c1_gain <- as.numeric(pre - post >= cutoff)
    c2_gain <- as.numeric(pre - post >= pct * pre)
    c1_loss <- as.numeric(post - pre >= cutoff)          # identify_sl: pre - post <= -7
    c2_loss <- as.numeric(post - pre >= pct * pre)       # corrected direction
    c2_quirk <- as.numeric(pre - post <= pct * pre)      # identify_sl as written
    rows[[length(rows) + 1]] <- data.frame(
      id = ids[i], pre_session = sessions[j - 1], post_session = sessions[j],
      n_pre = unname(pre_w["n"]), n_post = unname(post_w["n"]),
      mean_pre = unname(pre_w["m"]), mean_post = unname(post_w["m"]), t_crit = unname(tcrit),
      gain_crit1 = c1_gain, gain_crit2 = c2_gain, gain_crit3 = c3_gain,
      gain = c1_gain * c2_gain * c3_gain,
      loss_crit1 = c1_loss, loss_crit2 = c2_loss, loss_crit3 = c3_loss,
      loss = c1_loss * c2_loss * c3_loss,
      loss_sg_quirk = c1_loss * c2_quirk * c3_loss
    )
  }
}
intervals <- do.call(rbind, rows)

events_for <- function(flag_col, kind, sign) {
  hit <- intervals[!is.na(intervals[[flag_col]]) & intervals[[flag_col]] == 1, ]
  if (nrow(hit) == 0) return(NULL)
  freq <- table(hit$id)
  out <- list()
  for (r in seq_len(nrow(hit))) {
    i <- match(hit$id[r], ids)
    x <- x_all[i, ]
    p <- match(hit$pre_session[r], sessions)   # list position of the pregain session N
    at <- function(q) if (q >= 1 && q <= K) unname(x[q]) else NA
    magnitude <- sign * (x[p] - x[p + 1])      # positive size of the event
    tx_change <- x[1] - x[K]                   # improvement over treatment (lower is better)
    prop <- if (is.na(tx_change) || tx_change == 0) NA else magnitude / tx_change
    # reversal value: postgain score moved back by half the event
    rev_value <- x[p + 1] + sign * magnitude / 2
    later <- function(from) {
      if (from > K) return(0)
      v <- x[from:K]
      v <- v[!is.na(v)]
      if (sign > 0) as.numeric(any(v > rev_value)) else as.numeric(any(v < rev_value))
    }
    out[[r]] <- data.frame(
      kind = kind, id = hit$id[r], pre_session = hit$pre_session[r],
      post_session = hit$post_session[r], n_events = as.integer(freq[as.character(hit$id[r])]),
      score_n_minus_2 = at(p - 2), score_n_minus_1 = at(p - 1), score_n = at(p),
      score_n_plus_1 = at(p + 1), score_n_plus_2 = at(p + 2), score_n_plus_3 = at(p + 3),
      magnitude = unname(magnitude), tx_start_score = unname(x[1]), tx_end_score = unname(x[K]),
      tx_change = unname(tx_change), change_proportion = unname(prop),
      reversal_value = unname(rev_value),
      reversal = later(p + 2), reversal_sg_quirk = later(p + 3)
    )
  }
  do.call(rbind, out)
}

events <- rbind(
  events_for("gain", "gain", 1),
  events_for("loss", "loss", -1),
  events_for("loss_sg_quirk", "loss_sg_quirk", -1)
)

write.csv(intervals, file.path(out_dir, "sgdata_sudden_intervals.csv"), row.names = FALSE,
          na = "")
write.csv(events, file.path(out_dir, "sgdata_sudden_events.csv"), row.names = FALSE, na = "")

info <- c(
  "Generated by tests/reference/sudden_gains_reference.R",
  R.version.string,
  paste("platform:", R.version$platform),
  "packages: base R only (stats::qt, stats::sd)",
  "data: tests/data/sgdata.csv (suddengains 0.7.2 sgdata), BDI sessions 1-12",
  "settings: cutoff 7, pct 0.25, crit3 adjusted (alpha 0.05), identify_sg_1to2 FALSE, tx s1 -> s12",
  sprintf("intervals: %d rows; gains: %d; losses: %d; losses (suddengains quirk): %d",
          nrow(intervals), sum(events$kind == "gain"), sum(events$kind == "loss"),
          sum(events$kind == "loss_sg_quirk"))
)
writeLines(info, file.path(out_dir, "sudden_gains_reference_info.txt"))
cat(info, sep = "\n")
