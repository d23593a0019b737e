/* kv_groups.h - how a model's KV cache is partitioned: its layers in groups
 * of one attention type (full causal, or one sliding window), every group
 * the same number of layers.
 *
 * The engine keeps one pool of blocks for all groups and gives each
 * sequence one block table per group (model/batch.h); a block holds K and V
 * of layers_per_group layers for block_size positions. A windowed group
 * frees the blocks its window has left, so a long sequence holds about
 * window / block_size blocks there instead of its whole context (vLLM's
 * hybrid KV cache manager; docs/architecture.md, "KV cache groups").
 *
 * The group size is the gcd of the per-type layer counts, so every type
 * fills whole groups: gpt-oss-20b (12 windowed, 12 full) has two groups of
 * 12; a model of one type has one group of all its layers, whose blocks
 * and tables are those of a cache without groups. A runner keeps
 * layers_per_group K/V arrays of blocks, shared by all groups: layer l
 * reads and writes array slot[l], at the blocks of group[l]'s table. */
#ifndef FL_KV_GROUPS_H
#define FL_KV_GROUPS_H

#include <stddef.h>
#include <stdint.h>

#include "model/config.h"

/* The block that a windowed group's table names for the blocks its window
 * has left, when the layout has a windowed group: the engine reserves it
 * and never hands it out. The kernels read the keys of the tile that holds
 * a window's start, some before it, and mask them (attn_paged.h), so those
 * entries must name a block of the cache; nothing attends to what it holds
 * (a runner keeps it finite: a masked score times a NaN would still be
 * NaN). vLLM's null_block, also block 0. */
#define FL_KV_NULL_BLOCK 0

typedef struct fl_kv_groups {
    int num_groups;
    int layers_per_group;
    int num_layers;
    int window[FL_MAX_LAYERS];   /* [num_groups] the group's sliding window; 0: full attention */
    int16_t group[FL_MAX_LAYERS];/* [num_layers] the group of each layer */
    int16_t slot[FL_MAX_LAYERS]; /* [num_layers] its index within the group: the KV array it uses */
} fl_kv_groups;

/* Partitions cfg's layers: the group size is the gcd of the layer counts
 * of its attention types (a type is a window, or full); each type's layers
 * in index order fill its groups, and the groups are ordered by the first
 * layer of their type, then by their layers. Can't fail. */
void fl_kv_groups_init(fl_kv_groups *g, const fl_model_config *cfg);

/* Whether a group has a sliding window (and so the null block is reserved). */
int fl_kv_groups_have_window(const fl_kv_groups *g);

/* Writes the layout as "2 groups of 12 layers (window 128; full)", or
 * "1 group of 28 layers (full)", runs of equal groups written once with a
 * count ("window 12 x2; full"). */
void fl_kv_groups_describe(const fl_kv_groups *g, char *out, size_t len);

#endif
